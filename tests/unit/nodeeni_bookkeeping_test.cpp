// planBookkeeping and decideRemaining: every kind of bookkeeping action, table by table.
#include "agent/enimanager/nodeeni_bookkeeping.h"

#include <gtest/gtest.h>

#include <set>

#include "agent/enimanager/eni_planner.h"
#include "agent/kube/nodeeni_status_writer.h"

namespace eni {
namespace {

NodeEni nodeEni(const std::string& name, bool deleting, bool finalizer, bool selects = true) {
  NodeEni n;
  n.meta.name = name;
  n.meta.uid = "uid-" + name;
  n.meta.resourceVersion = "5";
  n.meta.deleting = deleting;
  if (finalizer) n.meta.finalizers.push_back(kNodeEniFinalizer);
  n.spec.nodeSelector = {{"eni", selects ? "yes" : "other"}};
  return n;
}

NodeEniAttachment attached(const std::string& eni) {
  NodeEniAttachment e;
  e.eniId = eni;
  e.deviceIndex = 1;
  e.status = "attached";
  return e;
}

BookkeepingInput base() {
  BookkeepingInput in;
  in.nodeName = "node-a";
  in.nodeUid = "node-uid";
  in.instanceId = "i-a";
  in.labels = {{"eni", "yes"}};
  return in;
}

NodeEniAttachmentObject objectFor(const BookkeepingInput& in, const std::string& name,
                                  std::vector<NodeEniAttachment> entries) {
  NodeEniAttachmentObject o;
  o.nodeEni = name;
  o.nodeEniUid = "uid-" + name;
  o.nodeName = in.nodeName;
  o.nodeUid = in.nodeUid;
  o.instanceId = in.instanceId;
  o.entries = std::move(entries);
  o.name = nodeEniAttachmentName(name, in.nodeName);
  return o;
}

struct Case {
  const char* what;
  bool deleting, finalizer, selects;
  bool hasEntries, hasProblem, hasObject, objectCurrent, removedOwn;
  bool finalizerTried, remainingChecked;
  // expected
  bool apply, remove, addFinalizer, checkRemaining;
};

class PlanBookkeeping : public ::testing::TestWithParam<Case> {};

TEST_P(PlanBookkeeping, Decides) {
  const Case& c = GetParam();
  BookkeepingInput in = base();
  in.nodeEnis.push_back(nodeEni("n1", c.deleting, c.finalizer, c.selects));
  if (c.hasEntries) in.entries["n1"] = {attached("eni-1")};
  if (c.hasProblem) in.problems["n1"] = "subnet not found";
  if (c.hasObject) {
    auto o = objectFor(in, "n1", {attached(c.objectCurrent ? "eni-1" : "eni-old")});
    if (c.hasProblem && c.objectCurrent && !c.hasEntries) o.entries.clear();
    if (c.hasProblem && c.objectCurrent) o.reason = "subnet not found";
    in.own["n1"] = o;
  }
  if (c.removedOwn) in.removedOwn.insert("n1");
  if (c.finalizerTried) in.finalizerTried.insert("n1");
  if (c.remainingChecked) in.remainingChecked.insert("n1");
  const BookkeepingPlan plan = planBookkeeping(in);
  EXPECT_EQ(plan.apply.size(), c.apply ? 1u : 0u) << c.what;
  EXPECT_EQ(plan.remove.size(), c.remove ? 1u : 0u) << c.what;
  EXPECT_EQ(plan.addFinalizer.size(), c.addFinalizer ? 1u : 0u) << c.what;
  EXPECT_EQ(plan.checkRemaining.size(), c.checkRemaining ? 1u : 0u) << c.what;
  EXPECT_TRUE(plan.dropOldEntries.empty()) << c.what;
}

// clang-format off
INSTANTIATE_TEST_SUITE_P(Table, PlanBookkeeping, ::testing::Values(
  //    what                                         del    fin    sel    entr   prob   obj    cur    rmOwn  triedF checkd  apply  remove addFin check
  Case{"first ENIs: write the object, ask the finalizer",
                                                     false, false, true,  true,  false, false, false, false, false, false,  true,  false, true,  false},
  Case{"finalizer already there: only the object",  false, true,  true,  true,  false, false, false, false, false, false,  true,  false, false, false},
  Case{"object current: nothing at all (warm restart)",
                                                     false, true,  true,  true,  false, true,  true,  false, false, false,  false, false, false, false},
  Case{"finalizer asked at this version: not again", false, false, true,  true,  false, true,  true,  false, true,  false,  false, false, false, false},
  Case{"object stale: rewrite",                      false, true,  true,  true,  false, true,  false, false, false, false,  true,  false, false, false},
  Case{"a problem only: an object, no finalizer",    false, false, true,  false, true,  false, false, false, false, false,  true,  false, false, false},
  Case{"no longer selected, released: delete",       false, true,  false, false, false, true,  true,  false, false, false,  false, true,  false, false},
  Case{"deleting, still releasing: keep the object", true,  true,  true,  true,  false, true,  true,  false, false, false,  false, false, false, false},
  Case{"deleting, released: delete own object",      true,  true,  true,  false, false, true,  true,  false, false, false,  false, true,  false, false},
  Case{"deleting, own object gone, selected: check", true,  true,  true,  false, false, false, false, false, false, false,  false, false, false, true},
  Case{"deleting, removed own earlier, unselected: check",
                                                     true,  true,  false, false, false, false, false, true,  false, false,  false, false, false, true},
  Case{"deleting, never involved: no check",         true,  true,  false, false, false, false, false, false, false, false,  false, false, false, false},
  Case{"deleting, checked at this version: no check",true,  true,  true,  false, false, false, false, false, false, true,   false, false, false, false},
  Case{"deleting without the finalizer: no check",   true,  false, true,  false, false, false, false, false, false, false,  false, false, false, false},
  Case{"deleting: a problem is not recorded",        true,  true,  true,  false, true,  false, false, false, false, false,  false, false, false, true}
));
// clang-format on

// A NodeENI whose finalizer aws-multi-eni-controller added never had AttachmentsRecorded written
// (the node that adds the finalizer writes it): a node with ENIs asks for it, once per version.
TEST(PlanBookkeepingExtra, AFinalizerAnotherToolAddedGetsTheConditionOnce) {
  auto plan = [](bool condition, bool tried, bool deleting, bool entries) {
    BookkeepingInput in = base();
    NodeEni n = nodeEni("n1", deleting, true);
    if (condition) n.conditionTypes.push_back(kAttachmentsRecordedCondition);
    in.nodeEnis.push_back(n);
    if (entries) in.entries["n1"] = {attached("eni-1")};
    if (tried) in.finalizerTried.insert("n1");
    return planBookkeeping(in);
  };
  EXPECT_EQ(plan(false, false, false, true).markRecorded, std::vector<std::string>{"n1"});
  EXPECT_TRUE(plan(false, false, false, true).addFinalizer.empty());
  EXPECT_TRUE(plan(true, false, false, true).markRecorded.empty()) << "already there";
  EXPECT_TRUE(plan(false, true, false, true).markRecorded.empty()) << "asked at this version";
  EXPECT_TRUE(plan(false, false, true, true).markRecorded.empty()) << "being deleted";
  EXPECT_TRUE(plan(false, false, false, false).markRecorded.empty()) << "no ENI here";
  BookkeepingInput fresh = base();
  fresh.nodeEnis.push_back(nodeEni("n1", false, false));
  fresh.entries["n1"] = {attached("eni-1")};
  EXPECT_TRUE(planBookkeeping(fresh).markRecorded.empty()) << "the finalizer's writer does it";
}

TEST(PlanBookkeepingExtra, AGoneNodeEnisObjectGoesOnceNothingIsHeld) {
  BookkeepingInput in = base();
  in.own["gone"] = objectFor(in, "gone", {attached("eni-1")});
  in.entries["gone"] = {attached("eni-1")};
  in.entries["gone"][0].status = "releasing";
  EXPECT_TRUE(planBookkeeping(in).remove.empty()) << "still releasing one of its ENIs";
  in.entries.clear();
  const auto plan = planBookkeeping(in);
  ASSERT_EQ(plan.remove.size(), 1u);
  EXPECT_EQ(plan.remove[0], "gone");
}

TEST(PlanBookkeepingExtra, AnOlderAgentsStatusEntriesOfThisNodeAreDroppedOnce) {
  BookkeepingInput in = base();
  NodeEni n = nodeEni("n1", false, true);
  NodeEniAttachment mine = attached("eni-1");
  mine.nodeId = "node-a";
  NodeEniAttachment theirs = attached("eni-2");
  theirs.nodeId = "node-b";
  n.attachments = {theirs};
  in.nodeEnis = {n};
  EXPECT_TRUE(planBookkeeping(in).dropOldEntries.empty()) << "another node's entry is theirs";
  in.nodeEnis[0].attachments.push_back(mine);
  EXPECT_EQ(planBookkeeping(in).dropOldEntries, std::vector<std::string>{"n1"});
}

TEST(PlanBookkeepingExtra, EntriesOfARecordAreAttachedThenHeld) {
  ManagerRecord record;
  Attached a;
  a.record.nodeEni = "n1";
  a.record.eniId = "eni-1";
  a.record.attachmentId = "attach-1";
  a.record.deviceIndex = 1;
  a.record.phase = AttachmentPhase::Attached;
  a.subnetId = "subnet-1";
  a.mtu = 9001;
  record.attached.push_back(a);
  AttachmentRecord held;
  held.nodeEni = "n1";
  held.eniId = "eni-2";
  held.phase = AttachmentPhase::Releasing;
  record.held.push_back(held);
  const auto entries = entriesOf(record);
  ASSERT_EQ(entries.at("n1").size(), 2u);
  EXPECT_EQ(entries.at("n1")[0].subnetId, "subnet-1");
  EXPECT_EQ(entries.at("n1")[0].mtu, 9001);
  EXPECT_EQ(entries.at("n1")[0].status, "attached");
  EXPECT_EQ(entries.at("n1")[1].status, "releasing");
  EXPECT_FALSE(entries.at("n1")[0].dpdkBound);
}

// A device bound for DPDK shows in aws-multi-eni-controller's entry fields, held or attached.
TEST(NodeEniBookkeeping, ABoundDeviceIsReportedInTheOldToolsDpdkFields) {
  ManagerRecord record;
  Attached a;
  a.record.nodeEni = "n1";
  a.record.eniId = "eni-1";
  a.record.dpdk = DeviceBinding{"0000:00:06.0", "vfio-pci", "ena", "intel.com/sriov_dpdk"};
  record.attached.push_back(a);
  AttachmentRecord held;
  held.nodeEni = "n1";
  held.eniId = "eni-2";
  held.phase = AttachmentPhase::Releasing;
  held.dpdk = DeviceBinding{"0000:00:07.0", "igb_uio", "", ""};
  record.held.push_back(held);
  const auto entries = entriesOf(record).at("n1");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_TRUE(entries[0].dpdkBound);
  EXPECT_EQ(entries[0].dpdkDriver, "vfio-pci");
  EXPECT_EQ(entries[0].dpdkPciAddress, "0000:00:06.0");
  EXPECT_EQ(entries[0].dpdkResourceName, "intel.com/sriov_dpdk");
  EXPECT_TRUE(entries[1].dpdkBound);
  EXPECT_EQ(entries[1].dpdkDriver, "igb_uio");
}

TEST(DecideRemaining, EveryStep) {
  NodeEniAttachmentObject mine;
  mine.nodeName = "node-a";
  NodeEniAttachmentObject other;
  other.nodeName = "node-b";
  EXPECT_EQ(decideRemaining("node-a", std::nullopt, std::nullopt), RemainingStep::RemoveFinalizer);
  EXPECT_EQ(decideRemaining("node-a", mine, std::nullopt), RemainingStep::Wait);
  EXPECT_EQ(decideRemaining("node-a", other, std::nullopt), RemainingStep::CheckNode);
  EXPECT_EQ(decideRemaining("node-a", other, true), RemainingStep::PruneOrphan);
  EXPECT_EQ(decideRemaining("node-a", other, false), RemainingStep::Wait);
}

TEST(CleanupTimeout, TimestampsParseAsTheApiServerAndTheOldToolWriteThem) {
  EXPECT_EQ(parseTimestamp("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseTimestamp("2026-11-30T14:00:00Z"), 1796047200);
  EXPECT_EQ(parseTimestamp("2026-11-30T14:00:00.123456Z"), 1796047200);
  EXPECT_EQ(parseTimestamp("2026-11-30T15:30:00+01:30"), 1796047200);  // Go's RFC3339 offset
  EXPECT_EQ(parseTimestamp(formatTimestamp(1796047200)), 1796047200);
  for (const char* bad : {"", "yesterday", "2026-11-30", "2026-11-30T14:00:00",
                          "2026-13-30T14:00:00Z", "2026-11-30T14:00:00Zjunk"})
    EXPECT_FALSE(parseTimestamp(bad)) << bad;
}

// The start is the deletion's, unless aws-multi-eni-controller had started earlier and said so.
TEST(CleanupTimeout, StartIsTheOldToolsAnnotationElseTheDeletionTimestamp) {
  NodeEni n = nodeEni("x", true, true);
  EXPECT_FALSE(cleanupStart(n)) << "no deletionTimestamp";
  n.meta.deletionTimestamp = "2026-11-30T14:00:00Z";
  EXPECT_EQ(cleanupStart(n), 1796047200);
  n.meta.annotations[kOldCleanupStartAnnotation] = "2026-11-30T13:00:00Z";
  EXPECT_EQ(cleanupStart(n), 1796043600) << "the old key is honoured";
  n.meta.annotations[kOldCleanupStartAnnotation] = "not a time";
  EXPECT_EQ(cleanupStart(n), 1796047200) << "an unreadable one is ignored";
}

TEST(CleanupTimeout, EachNodesTurnIsWithinATenthOfTheDurationAtMostAMinute) {
  std::set<std::int64_t> turns;
  for (int i = 0; i < 200; ++i) {
    const Duration t = cleanupTurn("node-" + std::to_string(i), "uid-1", std::chrono::minutes(30));
    EXPECT_GE(t.count(), 0);
    EXPECT_LT(t, std::chrono::seconds(60));
    turns.insert(t.count());
    EXPECT_LT(cleanupTurn("node-" + std::to_string(i), "uid-1", std::chrono::seconds(2)),
              std::chrono::milliseconds(200));
  }
  EXPECT_GT(turns.size(), 150u) << "the nodes' turns are spread";
  EXPECT_EQ(cleanupTurn("node-1", "uid-1", std::chrono::minutes(30)),
            cleanupTurn("node-1", "uid-1", std::chrono::minutes(30)));
}

TEST(CleanupTimeout, TheMessageNamesTheNodesLeftBehindAndTheirEnis) {
  NodeEniAttachmentObject a;
  a.nodeName = "node-a";
  a.entries = {attached("eni-0a1"), attached("eni-0a2")};
  NodeEniAttachmentObject b;
  b.nodeName = "node-b";  // a Failed object: no ENI
  const std::string m = cleanupTimeoutMessage(std::chrono::minutes(30), {a, b}, 0);
  EXPECT_NE(m.find("within 30m"), std::string::npos) << m;
  EXPECT_NE(m.find("node-a (eni-0a1, eni-0a2)"), std::string::npos) << m;
  EXPECT_NE(m.find("node-b (no ENI recorded)"), std::string::npos) << m;
  EXPECT_EQ(m.find("more node"), std::string::npos) << m;
  EXPECT_NE(cleanupTimeoutMessage(std::chrono::seconds(90), {}, 0).find("No node's"),
            std::string::npos);
  // Bounded: at most kCleanupEventNodes nodes and kCleanupEventEnis ENIs each.
  std::vector<NodeEniAttachmentObject> many;
  for (int i = 0; i < 8; ++i) {
    NodeEniAttachmentObject o;
    o.nodeName = "node-" + std::to_string(i);
    for (int j = 0; j < 9; ++j) o.entries.push_back(attached("eni-0" + std::to_string(i * 10 + j)));
    many.push_back(o);
  }
  const std::string big = cleanupTimeoutMessage(std::chrono::minutes(30), many, 40);
  EXPECT_NE(big.find("and 43 more node(s)"), std::string::npos) << big;
  EXPECT_EQ(big.find("node-5"), std::string::npos) << big;
  EXPECT_EQ(big.find("eni-04,"), std::string::npos) << big;
  EXPECT_LT(big.size(), 1024u) << big;
}

}  // namespace
}  // namespace eni
