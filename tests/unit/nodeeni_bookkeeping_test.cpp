// planBookkeeping and decideRemaining: every kind of bookkeeping action, table by table.
#include "agent/enimanager/nodeeni_bookkeeping.h"

#include <gtest/gtest.h>

#include "agent/enimanager/eni_planner.h"

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

}  // namespace
}  // namespace eni
