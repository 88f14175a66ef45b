// The host reconciler with stateful fakes: tags owned and diffed like pod tags, interfaces
// created once and adopted after a crash, warm starts without EC2 reads, removal of only what
// it owns.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "agent/base/executor.h"
#include "agent/base/log.h"
#include "agent/eni/ownership.h"
#include "agent/host/host_reconciler.h"
#include "tests/support/fake_ec2.h"
#include "tests/support/fake_link_manager.h"
#include "tests/support/fake_state_store.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeEc2;
using testing::FakeImds;
using testing::ManualScheduler;

using MemoryStore = testing::FakeStateStore;

class NoSleep final : public Sleeper {
 public:
  void sleepFor(Duration) override { ++sleeps; }
  int sleeps = 0;
};

HostConfig config(TagSet tags, std::vector<HostInterface> interfaces = {}) {
  HostConfig c;
  c.tags = std::move(tags);
  c.interfaces = std::move(interfaces);
  return c;
}

HostInterface iface(std::int64_t index, const std::string& subnet, std::uint32_t mtu = 0) {
  HostInterface i;
  i.subnetId = subnet;
  i.deviceIndex = index;
  i.mtu = mtu;
  return i;
}

struct Harness {
  FakeEc2 ec2;
  FakeImds imds{ec2};
  ManualScheduler scheduler;
  InlineExecutor executor;
  NoSleep sleeper;
  EniLifecycle lifecycle{ec2, executor, sleeper, EniLifecycleOptions{}};
  MemoryStore store;
  std::vector<HostPassReport> reports;
  std::unique_ptr<HostReconciler> reconciler;
  LinkReconciler* links = nullptr;  // given to the reconciler by start()

  void start(HostConfig c) {
    HostReconcilerOptions o;
    o.resyncInterval = Duration(0);
    reconciler = std::make_unique<HostReconciler>(ec2, imds, scheduler, executor, lifecycle, store,
                                                  links, o);
    reconciler->setOnPass([this](const HostPassReport& r) { reports.push_back(r); });
    store.reload();  // a restart reads what the last run saved
    reconciler->start(std::move(c));
    settle();
  }
  void settle() {
    for (int i = 0; i < 20 && scheduler.pending() > 0; ++i) scheduler.advance(Duration(10000));
  }
  void reload(HostConfig c) {
    reconciler->setConfig(std::move(c));
    settle();
  }
  std::vector<std::string> owned() const {
    std::vector<std::string> out;
    for (const auto& [id, e] : ec2.enis) {
      if (FakeEc2::tagOf(e, "eni-agent.io/managed-by") == "eni-agent") out.push_back(id);
    }
    return out;
  }
};

TEST(HostReconciler, ColdStartTagsEveryEniAndLeavesForeignTags) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0).tags = {{"Owner", "someone"}};
  h.ec2.addAttached("eni-other", 1);
  h.start(config({{"Team", "Platform"}}));
  for (const char* id : {"eni-primary", "eni-other"}) {
    const auto& e = h.ec2.enis.at(id);
    EXPECT_EQ(FakeEc2::tagOf(e, "Team"), "Platform") << id;
    EXPECT_EQ(FakeEc2::tagOf(e, "eni-tagger.io/hash"), tagHash({{"Team", "Platform"}})) << id;
  }
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Owner"), "someone");
  EXPECT_EQ(h.ec2.calls["DescribeNetworkInterfaces"], 1);  // the one cold-start Describe
  EXPECT_EQ(h.ec2.calls["CreateTags"], 1);                 // both ENIs in one call
  ASSERT_TRUE(h.store.saved);
  EXPECT_EQ(h.store.saved->enis.at("eni-primary").tags, (TagSet{{"Team", "Platform"}}));
  ASSERT_FALSE(h.reports.empty());
  EXPECT_TRUE(h.reports.back().complete);
}

TEST(HostReconciler, WarmStartCostsNoEc2CallAtAll) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.start(config({{"Team", "Platform"}}, {iface(1, "subnet-a", 9001)}));
  ASSERT_EQ(h.owned().size(), 1u);
  h.ec2.calls.clear();
  h.reconciler.reset();
  h.start(config({{"Team", "Platform"}}, {iface(1, "subnet-a", 9001)}));
  EXPECT_EQ(h.ec2.reads(), 0);
  EXPECT_EQ(h.ec2.writes(), 0);
  EXPECT_TRUE(h.reports.back().complete);
  EXPECT_EQ(h.reports.back().interfaces, 1u);
  ASSERT_EQ(h.reconciler->hostLinks().size(), 1u);
  EXPECT_EQ(h.reconciler->hostLinks()[0].mtu, 9001u);
}

// IMDS is eventually consistent: a listed key of an interface can answer 404 for a moment, and
// that interface is skipped on that read. EC2 stands in for it: its record and the tags applied
// to it stay, its device index stays taken, and nothing is created or attached again.
TEST(HostReconciler, InterfacesImdsSkipsKeepTheirRecordsAndTheirDeviceIndexes) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.addAttached("eni-foreign", 2);
  h.start(config({{"Team", "Platform"}}, {iface(1, "subnet-a")}));
  ASSERT_EQ(h.owned().size(), 1u);
  const std::string mine = h.owned()[0];
  ASSERT_EQ(h.store.saved->enis.count(mine), 1u);
  h.ec2.calls.clear();
  h.reconciler.reset();
  h.imds.staleMacs = {h.ec2.enis.at(mine).macAddress, h.ec2.enis.at("eni-foreign").macAddress};
  // A new interface wants device index 2, which the skipped foreign ENI holds.
  const HostConfig more =
      config({{"Team", "Platform"}}, {iface(1, "subnet-a"), iface(2, "subnet-b")});
  h.start(more);
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 1) << "only subnet-b's";
  EXPECT_EQ(h.ec2.calls["AttachNetworkInterface"], 1);
  EXPECT_EQ(h.ec2.calls["DetachNetworkInterface"], 0);
  EXPECT_EQ(h.ec2.calls["DeleteNetworkInterface"], 0);
  ASSERT_EQ(h.owned().size(), 2u);
  for (const auto& id : h.owned()) {
    if (id == mine) continue;
    ASSERT_TRUE(h.ec2.enis.at(id).attachment);
    EXPECT_EQ(h.ec2.enis.at(id).attachment->deviceIndex, 3) << "2 is the skipped foreign ENI's";
  }
  for (const auto& id : {mine, std::string("eni-foreign")}) {
    ASSERT_EQ(h.store.saved->enis.count(id), 1u) << id << ": a skipped ENI's record stays";
    EXPECT_EQ(h.store.saved->enis.at(id).tags, (TagSet{{"Team", "Platform"}})) << id;
  }
  EXPECT_TRUE(h.reports.back().complete);

  // A later read shows them again: nothing more to do.
  h.imds.staleMacs.clear();
  h.ec2.calls.clear();
  h.reload(more);
  EXPECT_EQ(h.ec2.writes(), 0);
  EXPECT_EQ(h.store.saved->enis.at(mine).tags, (TagSet{{"Team", "Platform"}}));
}

TEST(HostReconciler, CreatesTagsAttachesOnceAndSetsDeleteOnTermination) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.addAttached("eni-foreign", 1);  // device index 1 is taken: the next free one is used
  HostInterface want = iface(1, "subnet-b", 1500);
  want.deleteOnTermination = false;
  h.start(config({{"Team", "Platform"}}, {want}));
  ASSERT_EQ(h.owned().size(), 1u);
  const auto& e = h.ec2.enis.at(h.owned()[0]);
  EXPECT_EQ(e.subnetId, "subnet-b");
  ASSERT_TRUE(e.attachment);
  EXPECT_EQ(e.attachment->instanceId, h.ec2.instanceId);
  EXPECT_EQ(e.attachment->deviceIndex, 2);
  EXPECT_FALSE(e.attachment->deleteOnTermination);
  EXPECT_EQ(FakeEc2::tagOf(e, "eni-agent.io/instance-id"), h.ec2.instanceId);
  EXPECT_EQ(FakeEc2::tagOf(e, "NodeENI"), "host-1");
  EXPECT_EQ(FakeEc2::tagOf(e, "node.k8s.amazonaws.com/no_manage"), "true");
  EXPECT_EQ(FakeEc2::tagOf(e, "Team"), "Platform");  // host tags go on its own ENIs too
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 1);
  EXPECT_EQ(h.ec2.calls["AttachNetworkInterface"], 1);
  EXPECT_EQ(h.ec2.calls["ModifyNetworkInterfaceAttribute"], 1);
  ASSERT_EQ(h.store.saved->attachments.size(), 1u);
  EXPECT_EQ(h.store.saved->attachments[0].eniId, e.id);
  EXPECT_EQ(h.store.saved->attachments[0].deviceIndex, 2);
  // Another pass changes nothing.
  h.ec2.calls.clear();
  h.reload(config({{"Team", "Platform"}, {"Extra", "1"}}, {want}));
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 0);
  EXPECT_EQ(h.ec2.calls["AttachNetworkInterface"], 0);
}

TEST(HostReconciler, AfterACrashBetweenCreateAndAttachItAdoptsInsteadOfDuplicating) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  CreateEniRequest leftover;
  leftover.subnetId = "subnet-a";
  leftover.tags = ownershipTags("host-1", h.ec2.instanceId, "subnet-a", h.ec2.instanceId);
  ASSERT_TRUE(h.ec2.createNetworkInterface(leftover));
  h.ec2.calls.clear();
  h.start(config({}, {iface(1, "subnet-a")}));
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 0);
  EXPECT_EQ(h.ec2.calls["AttachNetworkInterface"], 1);
  EXPECT_EQ(h.owned().size(), 1u);
}

TEST(HostReconciler, AnInterfaceThatLeavesTheConfigIsDetachedAndDeletedButForeignEnisStay) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.addAttached("eni-foreign", 5);
  h.start(config({{"Team", "Platform"}, {"Env", "prod"}}, {iface(1, "subnet-a")}));
  ASSERT_EQ(h.owned().size(), 1u);
  const std::string mine = h.owned()[0];
  h.reload(config({{"Team", "Platform"}}));
  EXPECT_EQ(h.ec2.enis.count(mine), 0u);
  EXPECT_EQ(h.ec2.enis.count("eni-foreign"), 1u);
  EXPECT_EQ(h.ec2.calls["DetachNetworkInterface"], 1);
  EXPECT_EQ(h.ec2.calls["DeleteNetworkInterface"], 1);
  EXPECT_TRUE(h.store.saved->attachments.empty());
  // Only the key it applied and no longer wants went.
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-foreign"), "Env"), "");
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-foreign"), "Team"), "Platform");
}

TEST(HostReconciler, RemovedTagsGoButTagsItNeverAppliedStay) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0).tags = {{"Owner", "someone"}};
  h.start(config({{"Team", "Platform"}}));
  h.reload(config({}));
  const auto& e = h.ec2.enis.at("eni-primary");
  EXPECT_EQ(FakeEc2::tagOf(e, "Team"), "");
  EXPECT_EQ(FakeEc2::tagOf(e, "eni-tagger.io/hash"), "");
  EXPECT_EQ(FakeEc2::tagOf(e, "Owner"), "someone");
  EXPECT_TRUE(h.store.saved->enis.at("eni-primary").tags.empty());
}

TEST(HostReconciler, AForeignValueIsNeverOverwrittenEvenWhenAWarmStartAddsTheKey) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.start(config({{"Team", "Platform"}}));
  // Someone else sets Owner; then host.json asks for Owner too.
  h.ec2.enis.at("eni-primary").tags.push_back({"Owner", "someone"});
  h.ec2.calls.clear();
  h.reload(config({{"Team", "Platform"}, {"Owner", "me"}}));
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Owner"), "someone");
  EXPECT_EQ(h.ec2.calls["DescribeNetworkInterfaces"], 1);  // it looked before writing
  ASSERT_FALSE(h.reports.back().problems.empty());
  EXPECT_NE(h.reports.back().problems[0].find("set by someone else"), std::string::npos);
}

TEST(HostReconciler, AConflictIsRememberedSoAWarmRestartDoesNotDescribeAgain) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.addAttached("eni-tagged", 1).tags = {{"eni-tagger.io/hash", "0123456789abcdef"}};
  h.start(config({{"Team", "Platform"}}));
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-tagged"), "Team"), "");
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Team"), "Platform");
  ASSERT_FALSE(h.reports.back().problems.empty());
  h.ec2.calls.clear();
  h.reconciler.reset();
  h.start(config({{"Team", "Platform"}}));
  EXPECT_EQ(h.ec2.reads(), 0);
  EXPECT_EQ(h.ec2.writes(), 0);
  EXPECT_FALSE(h.reports.back().problems.empty());
  // A changed config looks again.
  h.reload(config({{"Team", "Other"}}));
  EXPECT_EQ(h.ec2.calls["DescribeNetworkInterfaces"], 1);
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-tagged"), "Team"), "");
}

TEST(HostReconciler, TheDriftCheckDescribesOnceAndReappliesAnOwnedTagSomeoneRemoved) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  HostReconcilerOptions o;
  o.resyncInterval = std::chrono::minutes(30);
  HostReconciler r(h.ec2, h.imds, h.scheduler, h.executor, h.lifecycle, h.store, nullptr, o);
  r.start(config({{"Team", "Platform"}}));
  h.scheduler.advance(Duration(100));
  ASSERT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Team"), "Platform");
  auto& tags = h.ec2.enis.at("eni-primary").tags;
  tags.erase(std::remove_if(tags.begin(), tags.end(), [](const Tag& t) { return t.key == "Team"; }),
             tags.end());
  h.ec2.calls.clear();
  h.scheduler.advance(std::chrono::minutes(20));  // before the earliest jittered resync
  EXPECT_EQ(h.ec2.reads(), 0);
  h.scheduler.advance(std::chrono::minutes(17));  // past the latest
  EXPECT_EQ(h.ec2.calls["DescribeNetworkInterfaces"], 1);
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Team"), "Platform");
}

TEST(HostReconciler, APassThatCannotReadImdsKeepsTheLinksItHad) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  HostReconcilerOptions o;
  o.resyncInterval = Duration(0);
  HostReconciler r(h.ec2, h.imds, h.scheduler, h.executor, h.lifecycle, h.store, nullptr, o);
  std::vector<std::size_t> linkCounts;
  r.setOnLinks([&](const std::vector<HostLink>& l) { linkCounts.push_back(l.size()); });
  HostInterface want = iface(1, "subnet-a");
  want.configureAddress = true;
  r.start(config({}, {want}));
  h.scheduler.advance(Duration(100));
  ASSERT_EQ(r.hostLinks().size(), 1u);
  EXPECT_EQ(r.hostLinks()[0].subnetCidr, "10.0.1.0/24");
  h.imds.down = true;
  want.mtu = 1500;
  r.setConfig(config({}, {want}));
  h.scheduler.advance(Duration(100));
  EXPECT_EQ(r.hostLinks().size(), 1u);
  ASSERT_FALSE(linkCounts.empty());
  EXPECT_EQ(linkCounts.back(), 1u);
  EXPECT_EQ(r.state().attachments.size(), 1u);
}

TEST(HostReconciler, DryRunWritesNothing) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  HostReconcilerOptions o;
  o.dryRun = true;
  o.resyncInterval = Duration(0);
  HostReconciler r(h.ec2, h.imds, h.scheduler, h.executor, h.lifecycle, h.store, nullptr, o);
  r.start(config({{"Team", "Platform"}}, {iface(1, "subnet-a")}));
  h.scheduler.advance(Duration(100));
  EXPECT_EQ(h.ec2.writes(), 0);
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Team"), "");
  EXPECT_TRUE(r.state().enis.at("eni-primary").tags.empty());
}

TEST(HostReconciler, AnAttachEc2RefusesIsReportedAndNotRetriedInALoop) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.failNext["AttachNetworkInterface"] =
      Error{ErrorCode::Invalid, "the subnet is in another availability zone"};
  h.start(config({}, {iface(1, "subnet-a")}));
  ASSERT_FALSE(h.reports.empty());
  EXPECT_TRUE(h.reports.back().complete);
  EXPECT_EQ(h.scheduler.pending(), 0u);
  ASSERT_EQ(h.reports.back().problems.size(), 1u);
  EXPECT_NE(h.reports.back().problems[0].find("another availability zone"), std::string::npos);
  EXPECT_EQ(h.owned().size(), 1u);  // its ENI is kept for the next try, not deleted
}

// As in the ENI manager: the kernel shows the first interface's link while the pass attaches the
// second, and the event that announces it configures it (MTU and up in one request) though the
// pass has saved nothing yet. The second attach is refused: its MAC is not left managed.
TEST(HostReconciler, ALinkIsConfiguredByItsFirstEventWhileThePassStillAttaches) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  testing::FakeLinkManager kernel;
  LinkReconciler links(kernel, h.scheduler);
  h.links = &links;
  std::vector<std::string> macs;  // the pass's ENIs, in the order they were attached
  std::size_t requestsMidPass = 0;
  bool savedMidPass = true;
  h.ec2.onCall = [&](const std::string& action) {
    if (action != "AttachNetworkInterface") return;
    for (const auto& [id, e] : h.ec2.enis) {  // the one about to be attached
      if (!e.attachment && std::find(macs.begin(), macs.end(), e.macAddress) == macs.end())
        macs.push_back(e.macAddress);
    }
    if (h.ec2.calls["AttachNetworkInterface"] != 2) return;
    links.onEvent({LinkEventType::New, LinkInfo{7, "eth1", macs[0], 0, 1500, "down"}});
    requestsMidPass = kernel.requests.size();
    savedMidPass = h.store.saved.has_value() && !h.store.saved->attachments.empty();
    h.ec2.failNext["AttachNetworkInterface"] = Error{ErrorCode::Invalid, "another zone"};
  };
  h.start(config({}, {iface(1, "subnet-b", 9001), iface(2, "subnet-c", 9001)}));
  ASSERT_EQ(h.ec2.calls["AttachNetworkInterface"], 2);
  ASSERT_EQ(macs.size(), 2u);
  EXPECT_FALSE(savedMidPass) << "the pass had saved nothing when the link came";
  ASSERT_EQ(requestsMidPass, 1u) << "the announcing event configured the link, mid-pass";
  EXPECT_EQ(kernel.requests[0].ifindex, 7);
  EXPECT_EQ(kernel.requests[0].mtu, 9001u);
  EXPECT_TRUE(kernel.requests[0].up) << "MTU and up in one request";
  EXPECT_EQ(links.links().count(macs[0]), 1u);
  EXPECT_EQ(links.links().count(macs[1]), 0u) << "no stale wanted MAC";
}

TEST(HostReconciler, ImdsDownIsRetriedAndNothingIsWritten) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.imds.down = true;
  HostReconcilerOptions o;
  o.resyncInterval = Duration(0);
  HostReconciler r(h.ec2, h.imds, h.scheduler, h.executor, h.lifecycle, h.store, nullptr, o);
  std::vector<HostPassReport> reports;
  r.setOnPass([&](const HostPassReport& p) { reports.push_back(p); });
  r.start(config({{"Team", "Platform"}}));
  h.scheduler.advance(Duration(100));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_FALSE(reports[0].complete);
  EXPECT_EQ(h.ec2.writes(), 0);
  EXPECT_EQ(h.scheduler.pending(), 1u);  // the retry
  h.imds.down = false;
  h.scheduler.advance(Duration(10000));
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_TRUE(reports[1].complete);
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Team"), "Platform");
}

TEST(HostReconciler, AFailedTagWriteKeepsTheOldRecordAndRetries) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.failNext["CreateTags"] = Error{ErrorCode::Throttled, "slow down"};
  HostReconcilerOptions o;
  o.resyncInterval = Duration(0);
  HostReconciler r(h.ec2, h.imds, h.scheduler, h.executor, h.lifecycle, h.store, nullptr, o);
  r.start(config({{"Team", "Platform"}}));
  h.scheduler.advance(Duration(100));
  EXPECT_TRUE(r.state().enis.at("eni-primary").tags.empty());
  h.scheduler.advance(Duration(10000));
  EXPECT_EQ(r.state().enis.at("eni-primary").tags, (TagSet{{"Team", "Platform"}}));
  EXPECT_EQ(FakeEc2::tagOf(h.ec2.enis.at("eni-primary"), "Team"), "Platform");
}

TEST(HostReconciler, SubnetNamesAreLookedUpInTheVpc) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.ec2.subnets.push_back(Subnet{"subnet-named", h.ec2.vpcId, "10.0.2.0/24", "", {{"Name", "b"}}});
  HostInterface want;
  want.subnetName = "b";
  want.deviceIndex = 1;
  HostInterface missing;
  missing.subnetName = "nope";
  missing.deviceIndex = 2;
  h.start(config({}, {want, missing}));
  ASSERT_EQ(h.owned().size(), 1u);
  EXPECT_EQ(h.ec2.enis.at(h.owned()[0]).subnetId, "subnet-named");
  ASSERT_EQ(h.reports.back().problems.size(), 1u);
  EXPECT_NE(h.reports.back().problems[0].find("Name=nope"), std::string::npos);
  EXPECT_TRUE(h.reports.back().complete);  // a config problem is not retried
}

// state.json says a create may be in flight before CreateNetworkInterface is sent, and a pass
// with nothing left to do clears it.
TEST(HostReconciler, TheWriteAheadIsSavedBeforeTheCreateAndClearedAfter) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  std::vector<std::pair<std::vector<std::string>, int>> saves;  // creating, creates sent by then
  h.store.onSave = [&](const NodeState& s) {
    saves.emplace_back(s.creating, h.ec2.calls["CreateNetworkInterface"]);
  };
  h.start(config({}, {iface(1, "subnet-a")}));
  ASSERT_EQ(h.owned().size(), 1u);
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 1);
  ASSERT_FALSE(saves.empty());
  EXPECT_EQ(saves.front(), (std::pair<std::vector<std::string>, int>{{"host-1"}, 0}));
  EXPECT_TRUE(h.store.saved->creating.empty());
  ASSERT_EQ(h.store.saved->attachments.size(), 1u);
  EXPECT_EQ(h.store.saved->attachments[0].eniId, h.owned()[0]);
  EXPECT_TRUE(h.reports.back().complete);
}

TEST(HostReconciler, AWriteAheadThatCannotBeSavedCreatesNothingUntilItIs) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  h.store.failSaves = true;
  HostReconcilerOptions o;
  o.resyncInterval = Duration(0);
  HostReconciler r(h.ec2, h.imds, h.scheduler, h.executor, h.lifecycle, h.store, nullptr, o);
  r.start(config({}, {iface(1, "subnet-a")}));
  h.scheduler.advance(Duration(20000));  // the first pass and a few retries
  EXPECT_GE(h.store.saves, 2);
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 0);
  h.store.failSaves = false;
  h.scheduler.advance(Duration(20000));
  EXPECT_EQ(h.ec2.calls["CreateNetworkInterface"], 1);
  ASSERT_TRUE(h.store.saved);
  EXPECT_EQ(h.store.saved->attachments.size(), 1u);
}

// Killed between the create and the save, and the interface left host.json meanwhile: the
// write-ahead names it, so the restart finds the ENI and deletes it.
TEST(HostReconciler, AnEniCreatedJustBeforeAKillIsCleanedUpThroughTheWriteAhead) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  CreateEniRequest leftover;
  leftover.subnetId = "subnet-a";
  leftover.tags = ownershipTags("host-1", h.ec2.instanceId, "subnet-a", h.ec2.instanceId);
  auto orphan = h.ec2.createNetworkInterface(leftover);
  ASSERT_TRUE(orphan);
  NodeState saved;
  saved.instanceId = h.ec2.instanceId;
  saved.creating = {"host-1"};
  h.store.saved = saved;
  h.start(config({}));
  EXPECT_EQ(h.ec2.enis.count(orphan->id), 0u);
  EXPECT_TRUE(h.store.saved->creating.empty());
}

// ENIs carrying host mode's ownership tags for this instance that state.json never recorded:
// anyone allowed CreateTags could have set them. Never detached or deleted, warned about once.
TEST(HostReconciler, AnEniWithForgedTagsThatStateJsonNeverRecordedIsLeftAlone) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  auto& forged = h.ec2.addAttached("eni-forged", 5);
  forged.tags = ownershipTags("host-9", h.ec2.instanceId, "subnet-a", h.ec2.instanceId);
  auto& pods = h.ec2.addAttached("eni-pods", 6);
  pods.tags = ownershipTags("host-8", h.ec2.instanceId, "subnet-a", h.ec2.instanceId);
  pods.privateIpAddresses = {pods.privateIpAddress, "10.0.9.1"};
  std::vector<std::string> warnings;
  logging::setSink([&](const std::string& line) {
    if (line.find("ignoring it") != std::string::npos) warnings.push_back(line);
  });
  // A new interface makes the pass list the ENIs by ownership tags; a second one lists again.
  h.start(config({}, {iface(1, "subnet-b")}));
  h.reload(config({}, {iface(1, "subnet-b"), iface(2, "subnet-c")}));
  logging::setSink(nullptr);
  EXPECT_GE(h.ec2.calls["DescribeNetworkInterfaces"], 2);
  EXPECT_EQ(h.ec2.calls["DetachNetworkInterface"], 0);
  EXPECT_EQ(h.ec2.calls["DeleteNetworkInterface"], 0);
  EXPECT_EQ(h.ec2.enis.count("eni-forged"), 1u);
  EXPECT_EQ(h.ec2.enis.count("eni-pods"), 1u);
  ASSERT_EQ(warnings.size(), 2u) << "once per ENI";
  EXPECT_NE(warnings[0].find("not in this agent's records"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("secondary private IPs"), std::string::npos) << warnings[1];
}

// A state.json of another instance (a disk image reused) counts for nothing: its records do not
// make an ENI this instance's to delete.
TEST(HostReconciler, AnotherInstancesStateFileNeverLicensesADelete) {
  Harness h;
  h.ec2.addAttached("eni-primary", 0);
  auto& tagged = h.ec2.addAttached("eni-tagged", 5);
  tagged.tags = ownershipTags("host-9", h.ec2.instanceId, "subnet-a", h.ec2.instanceId);
  NodeState saved;
  saved.instanceId = "i-0ther";
  AttachmentRecord record;
  record.nodeEni = "host-9";
  record.eniId = "eni-tagged";
  record.attachmentId = "attach-eni-tagged";
  record.deviceIndex = 5;
  record.phase = AttachmentPhase::Attached;
  saved.attachments = {record};
  h.store.saved = saved;
  h.start(config({}, {iface(1, "subnet-b")}));
  EXPECT_EQ(h.ec2.calls["DeleteNetworkInterface"], 0);
  EXPECT_EQ(h.ec2.enis.count("eni-tagged"), 1u);
}

}  // namespace
}  // namespace eni
