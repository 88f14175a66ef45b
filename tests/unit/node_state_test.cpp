#include "agent/state/node_state.h"

#include <gtest/gtest.h>

namespace eni {
namespace {

TEST(NodeState, RoundTrips) {
  NodeState s;
  s.instanceId = "i-0abc";
  EniRecord e;
  e.mac = "02:00:00:00:00:01";
  e.deviceIndex = 0;
  e.subnet = "subnet-1";
  e.tags = {{"Team", "Platform"}};
  e.hash = "adee2f3e0055a9f5";
  e.pods["ns/a"] = PodRecord{"uid-a", "10.0.1.5"};
  s.enis["eni-1"] = e;
  s.attachments.push_back(
      {"multus", "eni-2", "eni-attach-1", 2, "eth2", 9001, "Configured", "02:00:00:00:00:02"});
  s.attachments.back().specHash = "0123456789abcdef";
  s.unownedEnis = {"eni-0", "eni-1"};
  auto text = encodeNodeState(s);
  ASSERT_TRUE(text);
  auto back = decodeNodeState(*text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(NodeState, RejectsWhatItCannotRead) {
  EXPECT_FALSE(decodeNodeState("not json"));
  auto newer = decodeNodeState(R"({"version":2})");
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message.find("version 2"), std::string::npos);
  EXPECT_FALSE(decodeNodeState(R"({"enis":{}})"));
  auto tolerant = decodeNodeState(
      R"({"version":1,"enis":{"eni-1":{"tags":{"a":1,"b":"2"},"pods":5}},"extra":true})");
  ASSERT_TRUE(tolerant);
  EXPECT_EQ(tolerant->enis["eni-1"].tags, (std::map<std::string, std::string>{{"b", "2"}}));
}

TEST(NodeState, StaysUnder64KiB) {
  NodeState s;
  for (int i = 0; i < 110; ++i) {
    EniRecord e;
    e.tags = {{"Team", "Platform"}, {"CostCenter", "1234"}};
    e.hash = "adee2f3e0055a9f5";
    e.pods["namespace-" + std::to_string(i) + "/pod-" + std::to_string(i)] =
        PodRecord{"6a1c2e0e-0000-4000-8000-" + std::to_string(100000000000 + i),
                  "10.0.1." + std::to_string(i)};
    s.enis["eni-0" + std::to_string(1000000000000000 + i)] = e;
  }
  auto text = encodeNodeState(s);
  ASSERT_TRUE(text);
  EXPECT_LT(text->size(), NodeState::kMaxBytes) << "110 pods on their own ENIs fit";
  for (int i = 0; i < 2000; ++i) {
    s.enis["eni-x" + std::to_string(i)] = s.enis.begin()->second;
  }
  auto tooBig = encodeNodeState(s);
  ASSERT_FALSE(tooBig);
  EXPECT_NE(tooBig.error().message.find("64 KiB"), std::string::npos);
}

}  // namespace
}  // namespace eni
