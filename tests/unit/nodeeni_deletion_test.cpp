// checkRemaining: the deletion protocol's reads, shared by the ENI manager and the fleet simulator.
#include "agent/enimanager/nodeeni_deletion.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeKubeApi;
using testing::ManualScheduler;

NodeEniAttachmentObject objectOf(const std::string& node) {
  NodeEniAttachmentObject o;
  o.nodeEni = "fast-path";
  o.nodeEniUid = "uid-1";
  o.nodeName = node;
  o.name = nodeEniAttachmentName(o.nodeEni, node);
  return o;
}

ObjectList listOf(const std::string& node) {
  ObjectList list;
  list.items.push_back(encodeNodeEniAttachment(objectOf(node), "t"));
  return list;
}

class CheckRemainingTest : public ::testing::Test {
 protected:
  CheckRemainingTest() {
    kube.storeObjects = true;
    kube.objects["nodes//node-live"] = Json::Value(Json::objectValue);
  }
  void check() {
    answer.reset();
    checkRemaining(kube, writer, "node-a", "uid-1", [this](RemainingAnswer a) { answer = a; });
  }
  FakeKubeApi kube;
  ManualScheduler clock;
  NodeEniAttachmentWriter writer{kube, clock, "node-a"};
  std::optional<RemainingAnswer> answer;
};

TEST_F(CheckRemainingTest, ADeadNodesObjectIsPrunedThenALiveNodesMakesItWait) {
  check();
  kube.answerList(listOf("node-dead"));
  ASSERT_FALSE(answer) << "reads the dead node's Node, deletes its object, lists again";
  ASSERT_EQ(kube.removed.size(), 1u);
  EXPECT_EQ(kube.removed[0].name, "fast-path.node-dead");
  ASSERT_EQ(kube.lists.size(), 1u);
  kube.answerList(listOf("node-live"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, RemainingAnswer::Outcome::LiveNodeLeft);
  EXPECT_EQ(answer->found->nodeName, "node-live");
  ASSERT_EQ(answer->pruned.size(), 1u);
  EXPECT_EQ(answer->pruned[0].nodeName, "node-dead");
  EXPECT_EQ(kube.gets, 2);
  EXPECT_EQ(writer.writes(), 1u) << "the prune, and nothing else";

  check();
  kube.answerList(ObjectList{});
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, RemainingAnswer::Outcome::NoneLeft);
  EXPECT_EQ(kube.gets, 2) << "none left: no Node read";
}

TEST_F(CheckRemainingTest, ItsOwnObjectWaitsAndFailuresSayWhat) {
  check();
  kube.answerList(listOf("node-a"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, RemainingAnswer::Outcome::OwnLeft);
  EXPECT_EQ(kube.gets, 0);

  check();
  kube.answerList(fail(ErrorCode::Transient, "fake: down"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, RemainingAnswer::Outcome::Failed);
  EXPECT_EQ(std::string(answer->failed), "cannot list the NodeENI's NodeENIAttachments");

  check();
  kube.failNext.push_back(Error{ErrorCode::Transient, "fake: down"});
  kube.answerList(listOf("node-live"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, RemainingAnswer::Outcome::Failed);
  EXPECT_EQ(std::string(answer->failed), "cannot read a Node whose NodeENIAttachment remains");

  check();
  kube.failNext.push_back(Error{ErrorCode::Permission, "fake: forbidden"});  // the Node GET
  kube.answerList(listOf("node-dead"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->outcome, RemainingAnswer::Outcome::Failed);
  EXPECT_TRUE(answer->pruned.empty());
}

}  // namespace
}  // namespace eni
