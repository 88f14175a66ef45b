// NodeLease against the fake API server's object store: two NodeLease objects on one store are
// two agents for one node. Time moves only when the test says so; results are counted.
#include "agent/kube/node_lease.h"

#include <gtest/gtest.h>

#include <memory>

#include "agent/base/json.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeKubeApi;
using testing::ManualScheduler;

const std::string kLease = "eni-agent-node-1";

struct Agent {
  std::unique_ptr<NodeLease> lease;
  int acquired = 0;
  int lost = 0;
  std::string lostWhy;
};

class NodeLeaseTest : public ::testing::Test {
 protected:
  NodeLeaseTest() { api_.storeObjects = true; }

  std::unique_ptr<Agent> agent(const std::string& identity) {
    auto a = std::make_unique<Agent>();
    NodeLeaseOptions o;
    o.name = kLease;
    o.identity = identity;
    Agent* raw = a.get();
    a->lease = std::make_unique<NodeLease>(api_, clock_, clock_, o,
                                           NodeLease::Handlers{[raw] { ++raw->acquired; },
                                                               [raw](const std::string& why) {
                                                                 ++raw->lost;
                                                                 raw->lostWhy = why;
                                                               }});
    return a;
  }
  Json::Value& stored() {
    return api_.objects[FakeKubeApi::keyOf({leasesKind(), "eni-agent", kLease, ""})];
  }
  std::string holder() { return stringField(objectField(stored(), "spec"), "holderIdentity"); }

  FakeKubeApi api_;
  ManualScheduler clock_;
};

TEST(NodeLeaseName, IsAValidObjectNameForEveryNode) {
  EXPECT_EQ(leaseNameFor("ip-10-0-1-2.ec2.internal"), "eni-agent-ip-10-0-1-2.ec2.internal");
  const std::string longest(253, 'a');
  const std::string name = leaseNameFor(longest);
  EXPECT_LE(name.size(), 253u);
  EXPECT_EQ(name.rfind("eni-agent-aaa", 0), 0u);
  EXPECT_NE(name, leaseNameFor(longest.substr(1))) << "cut names still differ (hash suffix)";
  const std::string odd = leaseNameFor("Node_1");
  EXPECT_EQ(odd.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-."), std::string::npos)
      << odd;
  EXPECT_NE(odd, leaseNameFor("node-1")) << "mapped names do not collide with real ones";
  EXPECT_EQ(leaseIdentity("eni-agent-x7k2p"), "eni-agent-x7k2p");
  EXPECT_NE(leaseIdentity("").find('_'), std::string::npos) << "hostname_pid";
}

TEST_F(NodeLeaseTest, TheFirstAgentCreatesTheLeaseAndRenewsIt) {
  auto a = agent("pod-a");
  a->lease->start();
  EXPECT_TRUE(a->lease->held());
  EXPECT_EQ(a->acquired, 1);
  EXPECT_EQ(a->lease->notReadyReason(), "");
  EXPECT_EQ(api_.creates, 1);
  EXPECT_EQ(holder(), "pod-a");
  EXPECT_EQ(intField(objectField(stored(), "spec"), "leaseDurationSeconds"), 15);
  const std::string firstRenew = stringField(objectField(stored(), "spec"), "renewTime");
  clock_.advance(Duration(5000 * 3));
  EXPECT_EQ(api_.updates, 3) << "one renewal per renew interval";
  EXPECT_NE(stringField(objectField(stored(), "spec"), "renewTime"), firstRenew);
  EXPECT_EQ(a->acquired, 1);
  EXPECT_EQ(a->lost, 0);
}

TEST_F(NodeLeaseTest, ASecondAgentWaitsWritesNothingAndSaysWhoHoldsIt) {
  auto a = agent("pod-a");
  a->lease->start();
  auto b = agent("pod-b");
  const int writesBefore = api_.creates + api_.updates;
  b->lease->start();
  EXPECT_FALSE(b->lease->held());
  EXPECT_EQ(b->acquired, 0);
  const std::string reason = b->lease->notReadyReason();
  EXPECT_EQ(reason.rfind("HeldByOther: held by pod-a; ", 0), 0u) << reason;
  EXPECT_NE(reason.find("eni-agent/eni-agent-node-1"), std::string::npos) << reason;
  // A minute of both running: a renews, b only reads and never takes the lease.
  clock_.advance(Duration(60000));
  EXPECT_EQ(b->lease->notReadyReason(), reason) << "the same while the holder renews";
  EXPECT_EQ(api_.creates + api_.updates - writesBefore, 12) << "a's renewals only";
  EXPECT_GE(api_.gets, 30);
  EXPECT_EQ(b->acquired, 0);
  EXPECT_EQ(holder(), "pod-a");
  EXPECT_TRUE(a->lease->held());
}

TEST_F(NodeLeaseTest, TheLeaseIsTakenOverOnceItsHolderStoppedRenewingForItsDuration) {
  auto a = agent("pod-a");
  a->lease->start();
  auto b = agent("pod-b");
  b->lease->start();
  a.reset();  // killed: no release, no more renewals
  clock_.advance(Duration(14000));
  EXPECT_EQ(b->acquired, 0) << "not before the lease duration has passed on b's clock";
  clock_.advance(Duration(4000));
  EXPECT_EQ(b->acquired, 1);
  EXPECT_EQ(holder(), "pod-b");
  EXPECT_EQ(intField(objectField(stored(), "spec"), "leaseTransitions"), 1);
}

TEST_F(NodeLeaseTest, AReleasedLeaseIsTakenAtTheNextRead) {
  auto a = agent("pod-a");
  a->lease->start();
  auto b = agent("pod-b");
  b->lease->start();
  int released = 0;
  a->lease->release([&](Result<void> r) {
    EXPECT_TRUE(r) << r.error().message;
    ++released;
  });
  EXPECT_EQ(released, 1);
  EXPECT_EQ(holder(), "");
  const int readsBefore = api_.gets;
  clock_.advance(Duration(2000));  // b's next read
  EXPECT_EQ(api_.gets - readsBefore, 1);
  EXPECT_EQ(b->acquired, 1);
  EXPECT_EQ(holder(), "pod-b");
  const int writes = api_.updates;
  clock_.advance(Duration(60000));
  EXPECT_EQ(api_.updates - writes, 12) << "a renews no more; b does";
}

TEST_F(NodeLeaseTest, TheSamePodRestartedTakesItsLeaseBackAtOnce) {
  auto a = agent("pod-a");
  a->lease->start();
  a.reset();  // the container is killed; the pod (and its name) stays
  auto again = agent("pod-a");
  again->lease->start();
  EXPECT_EQ(again->acquired, 1);
  EXPECT_EQ(intField(objectField(stored(), "spec"), "leaseTransitions"), 0);
}

TEST_F(NodeLeaseTest, AHolderThatFindsAnotherInItsLeaseStops) {
  auto a = agent("pod-a");
  a->lease->start();
  // As if a was cut off longer than the lease duration and pod-b took the lease meanwhile.
  Json::Value taken = stored();
  taken["spec"]["holderIdentity"] = "pod-b";
  api_.store({leasesKind(), "eni-agent", kLease, ""}, taken);
  clock_.advance(Duration(5000));
  EXPECT_EQ(a->lost, 1);
  EXPECT_NE(a->lostWhy.find("pod-b"), std::string::npos) << a->lostWhy;
  EXPECT_FALSE(a->lease->held());
  const int writes = api_.updates;
  clock_.advance(Duration(60000));
  EXPECT_EQ(api_.updates, writes) << "it writes the lease no more";
  EXPECT_EQ(holder(), "pod-b");
}

TEST_F(NodeLeaseTest, FailedRenewalsKeepTheLeaseAndRetry) {
  auto a = agent("pod-a");
  a->lease->start();
  for (int i = 0; i < 10; ++i)
    api_.failNext.push_back({ErrorCode::Transient, "connection refused"});
  clock_.advance(Duration(5000 + 10 * 2000));
  EXPECT_TRUE(a->lease->held());
  EXPECT_EQ(a->lost, 0);
  EXPECT_TRUE(api_.failNext.empty());
  EXPECT_EQ(api_.updates, 11) << "ten failed renewals at the retry interval, then one that worked";
}

TEST_F(NodeLeaseTest, ForbiddenSaysWhatTheAgentNeeds) {
  api_.failNext.push_back({ErrorCode::Permission, "leases is forbidden"});
  auto a = agent("pod-a");
  a->lease->start();
  EXPECT_FALSE(a->lease->held());
  EXPECT_EQ(a->lease->notReadyReason().rfind("Forbidden: ", 0), 0u);
  EXPECT_NE(a->lease->notReadyReason().find("leases get, create and update in namespace eni-agent"),
            std::string::npos);
  clock_.advance(Duration(2000));
  EXPECT_TRUE(a->lease->held()) << "retried";
}

}  // namespace
}  // namespace eni
