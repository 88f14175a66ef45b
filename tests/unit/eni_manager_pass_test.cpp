// planManagerPass and recordManagerPass: the ENI manager's pass decided from what was observed,
// and what its results leave. A table, one row per kind of pass.
#include "agent/enimanager/eni_manager_pass.h"

#include <gtest/gtest.h>

#include <functional>

namespace eni {
namespace {

constexpr const char* kMe = "i-me";

ManagerPassInput input() {
  ManagerPassInput in;
  in.nodeName = "n1";
  in.labels = {{"ng", "multi-eni"}};
  NodeEni n;
  n.meta.name = "storage";
  n.spec.nodeSelector = {{"ng", "multi-eni"}};
  n.spec.subnetId = "subnet-a";
  n.spec.deviceIndex = 1;
  n.spec.securityGroupIds = {"sg-1"};
  in.nodeEnis = {n};
  in.specHashes = {{"storage", "hash-1"}};
  in.recorded.instanceId = kMe;
  in.createStored = {"storage"};
  return in;
}

ManagerObservation ec2Observation() {
  ManagerObservation o;
  o.kind = ObservationKind::Ec2;
  o.instanceId = kMe;
  o.instance.id = kMe;
  o.instance.vpcId = "vpc-1";
  NetworkInterface primary;
  primary.id = "eni-primary";
  primary.attachment = EniAttachment{"attach-p", kMe, 0, "attached", true};
  o.instance.networkInterfaces = {primary};
  o.groupVpcs = {{"sg-1", "vpc-1"}};
  o.mine = std::vector<NetworkInterface>{};
  return o;
}

struct Row {
  const char* name;
  std::function<void(ManagerPassInput&, ManagerObservation&)> setup;
  std::function<void(const ManagerPlan&)> check;
};

TEST(ManagerPass, PlanTable) {
  const std::vector<Row> rows = {
      {"a failed observation retries and plans nothing",
       [](auto&, ManagerObservation& o) { o.kind = ObservationKind::Failed; },
       [](const ManagerPlan& p) {
         EXPECT_TRUE(p.retry);
         EXPECT_TRUE(p.actions.ensure.empty());
       }},
      {"nothing here: nothing, no retry",
       [](auto&, ManagerObservation& o) { o.kind = ObservationKind::NothingHere; },
       [](const ManagerPlan& p) {
         EXPECT_FALSE(p.retry);
         EXPECT_TRUE(p.actions.ensure.empty() && p.problems.empty());
       }},
      {"confirmed: the records stand",
       [](auto&, ManagerObservation& o) {
         o.kind = ObservationKind::Confirmed;
         ConfirmedAttachment c;
         c.record.nodeEni = "storage";
         c.record.eniId = "eni-1";
         c.subnetId = "subnet-a";
         o.confirmed = {c};
       },
       [](const ManagerPlan& p) {
         ASSERT_EQ(p.confirmed.size(), 1u);
         EXPECT_EQ(p.confirmed[0].subnetId, "subnet-a");
         EXPECT_TRUE(p.actions.ensure.empty());
       }},
      {"EC2: one create for the NodeENI, the primary seen attached", [](auto&, auto&) {},
       [](const ManagerPlan& p) {
         ASSERT_EQ(p.actions.ensure.size(), 1u);
         EXPECT_TRUE(p.actions.ensure[0].create);
         EXPECT_EQ(*p.actions.ensure[0].attachAt, 1);
         EXPECT_EQ(p.attachedHere, std::set<std::string>{"eni-primary"});
         EXPECT_TRUE(p.unsettled.empty());
       }},
      {"EC2, no write-ahead stored: the create waits and the NodeENI is unsettled",
       [](ManagerPassInput& in, auto&) { in.createStored.clear(); },
       [](const ManagerPlan& p) {
         EXPECT_TRUE(p.actions.ensure.empty());
         EXPECT_EQ(p.actions.awaitWriteAhead, std::vector<std::string>{"storage"});
         EXPECT_EQ(p.unsettled, std::set<std::string>{"storage"});
       }},
      {"a security group of another VPC: a problem, nothing created",
       [](auto&, ManagerObservation& o) {
         o.groupVpcs = {{"sg-1", "vpc-2"}};
       },
       [](const ManagerPlan& p) {
         ASSERT_EQ(p.problems.size(), 1u);
         EXPECT_NE(p.problems[0].message.find("is in vpc-2"), std::string::npos);
         EXPECT_TRUE(p.actions.ensure.empty());
       }},
      {"the list of this node's ENIs failed: retry, nothing planned",
       [](auto&, ManagerObservation& o) {
         o.mine.reset();
         o.mineError = "cannot list";
       },
       [](const ManagerPlan& p) {
         EXPECT_TRUE(p.retry);
         EXPECT_TRUE(p.actions.ensure.empty());
       }},
      {"dry run: planned, marked to be logged only",
       [](ManagerPassInput& in, auto&) { in.dryRun = true; },
       [](const ManagerPlan& p) {
         EXPECT_TRUE(p.dryRun);
         EXPECT_EQ(p.actions.ensure.size(), 1u);
       }},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    ManagerPassInput in = input();
    ManagerObservation o = ec2Observation();
    row.setup(in, o);
    row.check(planManagerPass(in, o, DeleteOnTerminationMemo{}));
  }
}

TEST(ManagerPass, RecordKeepsWhatDidNotFinishAndHashesOnlySettledNodeEnis) {
  ManagerPassInput in = input();
  in.nodeEnis.push_back(in.nodeEnis[0]);
  in.nodeEnis[1].meta.name = "scratch";
  in.nodeEnis[1].spec.subnetId = "subnet-b";
  in.specHashes["scratch"] = "hash-2";
  in.createStored.insert("scratch");
  ManagerPlan plan = planManagerPass(in, ec2Observation(), DeleteOnTerminationMemo{});
  ASSERT_EQ(plan.actions.ensure.size(), 2u);
  std::vector<EnsureResult> ensured(2);
  ensured[0].owner = "scratch";  // desiredEnis sorts by name
  ensured[0].failure = EnsureFailure{EniActionKind::Attach, Error{ErrorCode::Transient, "x"}};
  ensured[1].owner = "storage";
  ensured[1].attached = true;
  ensured[1].eni.id = "eni-1";
  ensured[1].eni.attachment = EniAttachment{"attach-1", kMe, 1, "attached", true};
  ReleaseResult stuck{"eni-old", "gone-nodeeni", ReleaseOutcome::Failed, "still attached", {}};
  stuck.eni.id = "eni-old";
  InterfaceMap imds;  // read after the pass applied: its new ENI shows, and is not foreign
  imds.interfaces = {ImdsInterface{}, ImdsInterface{}, ImdsInterface{}};
  imds.interfaces[0].interfaceId = "eni-primary";
  imds.interfaces[1].interfaceId = "eni-1";
  imds.interfaces[2].interfaceId = "eni-cni";
  ManagerRecord r = recordManagerPass(in, plan, ensured, {stuck}, imds);
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.retry);
  ASSERT_EQ(r.attached.size(), 1u);
  EXPECT_EQ(r.attached[0].record.specHash, "hash-1");
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].nodeEni, "scratch");
  ASSERT_EQ(r.held.size(), 1u);
  EXPECT_EQ(r.held[0].phase, AttachmentPhase::Releasing);
  EXPECT_EQ(r.foreign, (std::set<std::string>{"eni-cni", "eni-primary"}));
}

}  // namespace
}  // namespace eni
