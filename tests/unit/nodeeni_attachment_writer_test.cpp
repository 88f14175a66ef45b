// NodeEniAttachmentWriter and the NodeENIAttachment object: bounded by construction, one write per
// change, only this node's objects read, and at most one item read for a deletion check.
#include "agent/kube/nodeeni_attachment_writer.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "agent/base/json.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeKubeApi;
using testing::ManualScheduler;

NodeEniAttachment entry(std::int64_t index) {
  NodeEniAttachment e;
  e.eniId = "eni-0" + std::to_string(1000 + index);
  e.attachmentId = "eni-attach-0" + std::to_string(1000 + index);
  e.subnetId = "subnet-1";
  e.deviceIndex = index;
  e.mtu = 9001;
  e.status = "attached";
  return e;
}

NodeEniAttachmentObject object(int entries) {
  NodeEniAttachmentObject o;
  o.nodeEni = "fast-path";
  o.nodeEniUid = "uid-1";
  o.nodeName = "node-a";
  o.nodeUid = "node-uid-a";
  o.instanceId = "i-0123456789abcdef0";
  for (int i = 1; i <= entries; ++i) o.entries.push_back(entry(i));
  return o;
}

TEST(NodeEniAttachmentObject, NameIsNodeEniDotNodeAndLongPairsStayDistinctAndValid) {
  EXPECT_EQ(nodeEniAttachmentName("fast-path", "ip-10-0-0-1.ec2.internal"),
            "fast-path.ip-10-0-0-1.ec2.internal");
  const std::string longEni(200, 'a');
  const std::string a = nodeEniAttachmentName(longEni, std::string(100, 'b'));
  const std::string b = nodeEniAttachmentName(longEni, std::string(99, 'b') + "c");
  EXPECT_LE(a.size(), 253u);
  EXPECT_LE(b.size(), 253u);
  EXPECT_NE(a, b);
  EXPECT_NE(a.back(), '.');
}

TEST(NodeEniAttachmentObject, EncodesOwnerLabelsPhaseAndRoundTrips) {
  NodeEniAttachmentObject o = object(2);
  const Json::Value json = encodeNodeEniAttachment(o, "2026-11-30T10:00:00Z");
  EXPECT_EQ(json["metadata"]["name"].asString(), "fast-path.node-a");
  EXPECT_EQ(json["metadata"]["labels"][kNodeEniUidLabel].asString(), "uid-1");
  EXPECT_EQ(json["metadata"]["labels"][kNodeEniNameLabel].asString(), "fast-path");
  ASSERT_EQ(json["metadata"]["ownerReferences"].size(), 1u);
  EXPECT_EQ(json["metadata"]["ownerReferences"][0]["kind"].asString(), "Node");
  EXPECT_EQ(json["metadata"]["ownerReferences"][0]["uid"].asString(), "node-uid-a");
  EXPECT_EQ(json["status"]["phase"].asString(), "Attached");
  EXPECT_EQ(json["status"]["enis"].asInt(), 2);
  auto back = decodeNodeEniAttachment(json);
  ASSERT_TRUE(back);
  o.name = "fast-path.node-a";
  EXPECT_EQ(*back, o);

  o.reason = "subnet fast not found";
  EXPECT_EQ(o.phase(), "Failed");
  o.reason.clear();
  o.entries[0].status = "releasing";
  EXPECT_EQ(o.phase(), "Pending");
}

// The bound the issue asks for: whatever the fleet, no object an agent writes reaches 64 KiB.
TEST(NodeEniAttachmentObject, TheLargestObjectAllowedStaysUnder64KiB) {
  NodeEniAttachmentObject o = object(500);  // more than allowed: cut to kMaxAttachmentEntries
  for (auto& e : o.entries) {
    e.eniId = std::string(32, 'e');
    e.attachmentId = std::string(40, 'a');
    e.subnetId = std::string(32, 's');
    e.status = std::string(16, 't');
    e.deviceIndex = 127;
  }
  o.nodeEni = std::string(253, 'n');
  o.nodeName = std::string(253, 'm');
  o.nodeEniUid = std::string(64, 'u');
  o.reason = std::string(5000, 'r');
  const Json::Value json = encodeNodeEniAttachment(o, "2026-11-30T10:00:00Z");
  EXPECT_EQ(json["status"]["attachments"].size(), kMaxAttachmentEntries);
  EXPECT_EQ(json["status"]["truncatedEntries"].asUInt64(), 500 - kMaxAttachmentEntries);
  EXPECT_EQ(json["status"]["reason"].asString().size(), kMaxAttachmentReason);
  // What the API server adds: one managedFields entry (the list is atomic), uid, timestamps.
  const std::size_t serverAdds = 2048;
  EXPECT_LT(toJson(json).size() + serverAdds, 64u * 1024u) << toJson(json).size();
}

class NodeEniAttachmentWriterTest : public ::testing::Test {
 protected:
  FakeKubeApi kube;
  ManualScheduler clock;
  NodeEniAttachmentWriter writer{kube, clock, "node-a"};
  std::optional<Result<void>> answer;
  Callback<void> remember() {
    return [this](Result<void> r) { answer = std::move(r); };
  }
};

TEST_F(NodeEniAttachmentWriterTest, LoadListsOnlyThisNodesObjectsByFieldSelector) {
  writer.load(remember());
  ASSERT_EQ(kube.lists.size(), 1u);
  EXPECT_EQ(kube.lists[0].kind.plural, "nodeeniattachments");
  EXPECT_EQ(kube.lists[0].options.fieldSelector, "spec.nodeName=node-a");
  EXPECT_TRUE(kube.lists[0].options.labelSelector.empty());
  ObjectList list;
  list.items.push_back(encodeNodeEniAttachment(object(1), "t"));
  kube.answerList(list);
  ASSERT_TRUE(answer && *answer);
  EXPECT_TRUE(writer.loaded());
  ASSERT_EQ(writer.own().count("fast-path"), 1u);
  // What a restart read is what it would write: nothing is sent.
  EXPECT_FALSE(writer.apply(object(1), remember()));
  EXPECT_TRUE(kube.patches.empty());
  EXPECT_EQ(writer.writes(), 0u);
}

TEST_F(NodeEniAttachmentWriterTest, OneApplyPerChangeUnderOneManagerThenADelete) {
  ASSERT_TRUE(writer.apply(object(2), remember()));
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patches[0].first.name, "fast-path.node-a");
  EXPECT_EQ(kube.patches[0].first.kind.plural, "nodeeniattachments");
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Apply);
  EXPECT_EQ(kube.patchKinds[0].second.fieldManager, "eni-agent");
  EXPECT_FALSE(writer.apply(object(2), remember())) << "unchanged: no second write";
  ASSERT_TRUE(writer.apply(object(1), remember()));
  EXPECT_EQ(kube.patches.size(), 2u);
  ASSERT_TRUE(writer.remove("fast-path", remember()));
  ASSERT_EQ(kube.removed.size(), 1u);
  EXPECT_EQ(kube.removed[0].name, "fast-path.node-a");
  EXPECT_FALSE(writer.remove("fast-path", remember())) << "nothing left to delete";
  EXPECT_EQ(writer.writes(), 3u);
  EXPECT_EQ(writer.inFlight(), 0u);
}

TEST_F(NodeEniAttachmentWriterTest, AFailedApplyIsSentAgainAndAGoneObjectIsDeleted) {
  kube.patchAnswer = [](const ObjectRef&, const Json::Value&) -> Result<Json::Value> {
    return fail(ErrorCode::Transient, "fake: down");
  };
  ASSERT_TRUE(writer.apply(object(1), remember()));
  ASSERT_TRUE(answer && !*answer);
  kube.patchAnswer = nullptr;
  EXPECT_TRUE(writer.apply(object(1), remember())) << "not recorded as written: sent again";
  kube.failNext.push_back(Error{ErrorCode::NotFound, "fake: gone"});
  ASSERT_TRUE(writer.remove("fast-path", remember()));
  EXPECT_TRUE(answer && *answer) << "NotFound on delete is done";
  EXPECT_TRUE(writer.own().empty());
}

TEST_F(NodeEniAttachmentWriterTest, RemainingReadsOneItemByTheNodeEniUidLabel) {
  std::optional<Result<std::optional<NodeEniAttachmentObject>>> found;
  writer.remaining("uid-1", [&](auto r) { found = std::move(r); });
  ASSERT_EQ(kube.lists.size(), 1u);
  EXPECT_EQ(kube.lists[0].options.labelSelector, "eni-agent.io/nodeeni-uid=uid-1");
  EXPECT_EQ(kube.lists[0].options.limit, 1);
  ObjectList list;
  NodeEniAttachmentObject other = object(1);
  other.nodeName = "node-b";
  list.items.push_back(encodeNodeEniAttachment(other, "t"));
  list.remainingItemCount = 4998;
  kube.answerList(list);
  ASSERT_TRUE(found && *found && **found);
  EXPECT_EQ((**found)->nodeName, "node-b");
  EXPECT_EQ((**found)->name, "fast-path.node-b");

  writer.remaining("uid-1", [&](auto r) { found = std::move(r); });
  kube.answerList(ObjectList{});
  ASSERT_TRUE(found && *found);
  EXPECT_FALSE(**found) << "none left";
}

}  // namespace
}  // namespace eni
