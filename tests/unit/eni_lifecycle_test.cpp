// EniLifecycle with FakeEc2: releases at most releaseConcurrency at a time on their executor,
// one treatment of an ENI that is gone, the release rule checked on a Describe of its own, the
// ensure steps and the one tag-write loop.
#include "agent/eni/eni_lifecycle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>

#include "tests/support/fake_ec2.h"

namespace eni {
namespace {

using testing::FakeEc2;

// Holds every job until the test runs it: what is handed to the executor at once is countable.
class ManualExecutor final : public Executor {
 public:
  void run(std::function<void()> work, std::function<void()> done) override {
    jobs.emplace_back(std::move(work), std::move(done));
    peak = std::max(peak, jobs.size());
  }
  bool step() {
    if (jobs.empty()) return false;
    auto job = std::move(jobs.front());
    jobs.pop_front();
    job.first();
    job.second();
    return true;
  }
  std::deque<std::pair<std::function<void()>, std::function<void()>>> jobs;
  std::size_t peak = 0;
};

class NoSleep final : public Sleeper {
 public:
  void sleepFor(Duration) override { ++sleeps; }
  int sleeps = 0;
};

struct Fixture {
  FakeEc2 ec2;
  ManualExecutor executor;
  NoSleep sleeper;
  EniLifecycle lifecycle{ec2, executor, sleeper, EniLifecycleOptions{}};
  ReleaseGrounds grounds;
  std::vector<ReleaseResult> results;

  Fixture() {
    grounds.instanceId = ec2.instanceId;
    grounds.records.instanceId = ec2.instanceId;
  }
  // An ENI of NodeENI `owner`, attached here at `index`, eni-agent's by its tags and records.
  void ours(const std::string& id, std::int64_t index, const std::string& owner = "storage") {
    ec2.addAttached(id, index).tags = ownershipTags(owner, "n1", "subnet-a", ec2.instanceId);
    AttachmentRecord r;
    r.nodeEni = owner;
    r.eniId = id;
    grounds.records.attachments.push_back(r);
  }
  void release(const std::string& id) {
    NetworkInterface eni;
    eni.id = id;
    lifecycle.release({eni, "storage"}, grounds,
                      [this](ReleaseResult r) { results.push_back(std::move(r)); });
  }
  ReleaseOutcome outcomeOf(const std::string& id) const {
    for (const auto& r : results) {
      if (r.eniId == id) return r.outcome;
    }
    return ReleaseOutcome::Failed;
  }
};

TEST(EniLifecycle, ReleasesRunAtMostThreeAtOnceAndAllFinish) {
  Fixture f;
  for (int i = 1; i <= 8; ++i) {
    f.ours("eni-" + std::to_string(i), i);
    f.release("eni-" + std::to_string(i));
  }
  EXPECT_EQ(f.executor.jobs.size(), 3u) << "three handed to the executor, five queued";
  EXPECT_EQ(f.lifecycle.releasesInFlight(), 8u);
  while (f.executor.step()) {
  }
  EXPECT_EQ(f.executor.peak, 3u);
  ASSERT_EQ(f.results.size(), 8u);
  for (const auto& r : f.results) EXPECT_EQ(r.outcome, ReleaseOutcome::Released) << r.eniId;
  EXPECT_EQ(f.ec2.calls["DetachNetworkInterface"], 8);
  EXPECT_EQ(f.ec2.calls["DeleteNetworkInterface"], 8);
  EXPECT_EQ(f.lifecycle.releasesInFlight(), 0u);
}

TEST(EniLifecycle, AnEniThatIsGoneIsReleasedWithoutACall) {
  Fixture f;
  f.ours("eni-notfound", 1);
  f.ec2.failNext["DescribeNetworkInterfaces"] = Error{ErrorCode::NotFound, "no such ENI"};
  f.release("eni-notfound");  // EC2's NotFound
  while (f.executor.step()) {
  }
  f.release("eni-gone");  // an empty answer: the same
  while (f.executor.step()) {
  }
  EXPECT_EQ(f.outcomeOf("eni-gone"), ReleaseOutcome::Gone);
  EXPECT_EQ(f.outcomeOf("eni-notfound"), ReleaseOutcome::Gone);
  EXPECT_EQ(f.ec2.calls["DetachNetworkInterface"], 0);
  EXPECT_EQ(f.ec2.calls["DeleteNetworkInterface"], 0);
}

TEST(EniLifecycle, TheReleaseRuleIsCheckedOnItsOwnDescribe) {
  Fixture f;
  f.ec2.addAttached("eni-forged", 3).tags =
      ownershipTags("ghost", "n1", "subnet-a", f.ec2.instanceId);  // tags, and no record
  f.ours("eni-pods", 4);
  f.ec2.enis["eni-pods"].privateIpAddresses = {"10.0.0.1", "10.0.0.2"};
  f.release("eni-forged");
  f.release("eni-pods");
  while (f.executor.step()) {
  }
  EXPECT_EQ(f.outcomeOf("eni-forged"), ReleaseOutcome::Refused);
  EXPECT_EQ(f.outcomeOf("eni-pods"), ReleaseOutcome::Refused);
  EXPECT_EQ(f.ec2.calls["DetachNetworkInterface"], 0);
  EXPECT_EQ(f.ec2.enis.size(), 2u);
}

// A step the pass listed carries that Describe's view: the rule is checked on it, and the release
// costs the detach, one poll and the delete. A refusal on that view costs no call at all.
TEST(EniLifecycle, AStepThePassDescribedNeedsNoDescribeOfItsOwn) {
  Fixture f;
  f.ours("eni-1", 1);
  f.ec2.addAttached("eni-forged", 2).tags =
      ownershipTags("ghost", "n1", "subnet-a", f.ec2.instanceId);
  for (const char* id : {"eni-1", "eni-forged"}) {
    f.lifecycle.release({f.ec2.enis.at(id), "storage", true}, f.grounds,
                        [&f](ReleaseResult r) { f.results.push_back(std::move(r)); });
  }
  while (f.executor.step()) {
  }
  EXPECT_EQ(f.outcomeOf("eni-1"), ReleaseOutcome::Released);
  EXPECT_EQ(f.outcomeOf("eni-forged"), ReleaseOutcome::Refused);
  EXPECT_EQ(f.ec2.calls["DescribeNetworkInterfaces"], 1) << "the poll after the detach, only";
  EXPECT_EQ(f.ec2.calls["DetachNetworkInterface"], 1);
  EXPECT_EQ(f.ec2.calls["DeleteNetworkInterface"], 1);
}

TEST(EniLifecycle, AFailedDetachIsAFailureToRetryAndTheEniStays) {
  Fixture f;
  f.ours("eni-1", 1);
  f.ec2.failNext["DetachNetworkInterface"] = Error{ErrorCode::Transient, "injected"};
  f.release("eni-1");
  while (f.executor.step()) {
  }
  ASSERT_EQ(f.results.size(), 1u);
  EXPECT_EQ(f.results[0].outcome, ReleaseOutcome::Failed);
  EXPECT_NE(f.results[0].message.find("cannot detach ENI eni-1"), std::string::npos);
  EXPECT_EQ(f.ec2.enis.count("eni-1"), 1u);
}

TEST(EniLifecycle, EnsureStopsAtTheFirstFailureAndKeepsTheMemoTrue) {
  Fixture f;
  DeleteOnTerminationMemo memo;
  const Ownership owner{f.ec2.instanceId, "n1"};
  EnsureStep step;
  step.desired.nodeEni = "storage";
  step.desired.subnetId = "subnet-a";
  step.desired.tags = ownershipTags("storage", "n1", "subnet-a", f.ec2.instanceId);
  step.create = true;
  step.attachAt = 2;
  step.setDeleteOnTermination = true;
  f.ec2.failNext["AttachNetworkInterface"] = Error{ErrorCode::Invalid, "another zone"};
  EnsureResult r = f.lifecycle.ensureAttached(step, owner, memo);
  ASSERT_TRUE(r.failure);
  EXPECT_EQ(r.failure->step, EniActionKind::Attach);
  EXPECT_TRUE(r.created);
  EXPECT_FALSE(r.attached);
  EXPECT_EQ(f.ec2.calls["ModifyNetworkInterfaceAttribute"], 0);

  step.create = false;
  step.eni = r.eni;
  f.ec2.failNext["ModifyNetworkInterfaceAttribute"] = Error{ErrorCode::Throttled, "slow down"};
  r = f.lifecycle.ensureAttached(step, owner, memo);
  EXPECT_FALSE(r.failure);
  EXPECT_TRUE(r.attached);
  ASSERT_TRUE(r.deleteOnTermination) << "attached, and the value is still to be set";
  EXPECT_FALSE(memo.known(r.eni.attachment->attachmentId));
  step.attachAt.reset();
  step.eni = r.eni;
  r = f.lifecycle.ensureAttached(step, owner, memo);
  EXPECT_FALSE(r.deleteOnTermination);
  EXPECT_TRUE(memo.settled(r.eni.attachment->attachmentId, true, std::nullopt));
  EXPECT_EQ(f.ec2.calls["CreateNetworkInterface"], 1);
}

TEST(EniLifecycle, TagWritesFailPerEniAndNoDeleteFollowsAFailedCreate) {
  Fixture f;
  f.ec2.addAttached("eni-1", 1);
  f.ec2.addAttached("eni-2", 2);
  EniPlan a;  // sets and removes
  a.eniId = "eni-1";
  a.toSet = {{"Team", "Dev"}};
  a.toDelete = {{"Old", "x"}};
  EniPlan b;  // only removes
  b.eniId = "eni-2";
  b.toDelete = {{"Old", "x"}};
  f.ec2.failNext["CreateTags"] = Error{ErrorCode::Throttled, "slow down"};
  TagWriteOutcome out = f.lifecycle.applyTagPlans({a, b});
  ASSERT_EQ(out.failed.count("eni-1"), 1u);
  EXPECT_TRUE(out.failed["eni-1"].create);
  EXPECT_TRUE(out.failed["eni-1"].retryable);
  EXPECT_NE(out.failed["eni-1"].message.find("CreateTags on eni-1 failed"), std::string::npos);
  EXPECT_EQ(out.failed.count("eni-2"), 0u);
  EXPECT_EQ(out.failedCalls, 1);
  EXPECT_EQ(f.ec2.calls["DeleteTags"], 1) << "one DeleteTags, for eni-2 alone";

  f.ec2.failNext["DeleteTags"] = Error{ErrorCode::Invalid, "no"};
  out = f.lifecycle.applyTagPlans({b});
  ASSERT_EQ(out.failed.count("eni-2"), 1u);
  EXPECT_FALSE(out.failed["eni-2"].create) << "only the DeleteTags failed";
  EXPECT_FALSE(out.failed["eni-2"].retryable);
}

}  // namespace
}  // namespace eni
