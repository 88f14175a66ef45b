// `eni-agent status --link-netns`: the real binary shows a veth's live link state and MTU from a
// namespace the test makes, matched to the recorded ENI by MAC.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/base/json.h"
#include "agent/state/node_state.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

TEST(StatusLinks, ShowsLiveLinkStateAndMtuFromTheNamespace) {
  ASSERT_EQ(geteuid(), 0u) << "netns tests need root; CI runs them as root";
  auto ns = testing::TestNetns::create("eni-test-status");
  ASSERT_TRUE(ns) << ns.error().message;
  ASSERT_TRUE(ns->addVeth("ens9", "02:5a:00:00:00:09", "ens9-peer", 1400));

  NodeState state;
  state.instanceId = "i-netns";
  state.attachments.push_back({"storage", "eni-0netns", "eni-attach-0netns", 1, "eth1", 9001,
                               AttachmentPhase::Attached, "Configured", "02:5A:00:00:00:09"});
  const std::string dir = "/tmp/eni-status-netns-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/state.json") << *encodeNodeState(state);
  const std::vector<std::string> args = {
      testing::agentBinary(), "status",   "--mode",   "host", "--state-dir", dir,
      "--link-netns",         ns->path(), "--output", "json"};
  auto eniOf = [&](const testing::ProcessResult& r) -> Json::Value {
    EXPECT_EQ(r.status, 0) << r.err;
    auto parsed = parseJson(r.out);
    EXPECT_TRUE(parsed) << r.out;
    if (!parsed || (*parsed)["enis"].size() != 1) return Json::Value();
    EXPECT_EQ((*parsed)["linkNetns"].asString(), ns->path());
    return (*parsed)["enis"][0];
  };

  Json::Value down = eniOf(testing::runProcess(args));
  EXPECT_EQ(down["interface"].asString(), "ens9") << "the live name, found by MAC";
  EXPECT_EQ(down["link"].asString(), "down");
  EXPECT_EQ(down["mtu"].asInt(), 1400);
  EXPECT_EQ(down["wantedMtu"].asInt(), 9001);

  ASSERT_TRUE(ns->setUp("ens9"));
  Json::Value up = eniOf(testing::runProcess(args));
  EXPECT_EQ(up["link"].asString(), "up");

  auto table = testing::runProcess({testing::agentBinary(), "status", "--mode", "host",
                                    "--state-dir", dir, "--link-netns", ns->path()});
  EXPECT_NE(table.out.find("1400 (want 9001)"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("links in network namespace " + ns->path()), std::string::npos)
      << table.out;

  ASSERT_TRUE(ns->deleteLink("ens9"));
  Json::Value gone = eniOf(testing::runProcess(args));
  EXPECT_EQ(gone["link"].asString(), "missing");
  EXPECT_EQ(gone["interface"].asString(), "eth1") << "the recorded name, for the operator";
  std::filesystem::remove_all(dir);
}

TEST(StatusLinks, AnUnknownNamespaceLeavesLinksUnknownAndSaysWhy) {
  NodeState state;
  state.attachments.push_back({"storage", "eni-0netns", "eni-attach-0netns", 1, "eth1", 9001,
                               AttachmentPhase::Attached, "Configured", "02:5a:00:00:00:09"});
  const std::string dir = "/tmp/eni-status-nons-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/state.json") << *encodeNodeState(state);
  auto r = testing::runProcess({testing::agentBinary(), "status", "--mode", "host", "--state-dir",
                                dir, "--link-netns", "/run/netns/eni-no-such-namespace"});
  EXPECT_EQ(r.status, 0) << "the recorded state is still worth showing";
  EXPECT_NE(r.out.find("links unknown: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("eni-no-such-namespace"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unknown"), std::string::npos) << r.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace eni
