// EC2 throttling storm: half of every EC2 call answered RequestLimitExceeded (a bounded count of
// them, seeded) while 110 pods on one node churn, plus one 400 on a CreateTags. Everything
// converges; the 400 is never retried; and every call's attempts, read from the proxy's log by
// the AWS SDK retry headers, follow the client's policy.
#include <map>

#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

using ThrottleDrill = Drill;

std::string teamTags(int team, const std::string& stage) {
  return R"({"Team":"t)" + std::to_string(team) + R"(","Stage":")" + stage + R"("})";
}

TEST_F(ThrottleDrill, HalfOfAllCallsThrottledDuring110PodChurnConvergesAndRetriesByPolicy) {
  createNamespace();
  createNode();
  auto pods = makePods(110, "churn");
  ASSERT_EQ(pods.size(), 110u);

  // The first CreateTags is refused as invalid (a 4xx); then half of every call, 150 faults in
  // all, is throttled. Rules are tried in order, so the 400 is certain to land.
  setProxyRules(R"([{"action":"CreateTags","fault":"invalid","count":1},
                    {"action":"*","fault":"throttle","probability":0.5,"seed":20261123,"count":150}])");
  auto agent = startAgent({"--aws-rate-limit-qps=20", "--aws-rate-limit-burst=20"});

  // The churn: every pod appears with one of seven tag sets; a third change theirs, a quarter
  // drop the annotation (their owned tags must go), and every eleventh pod is deleted.
  for (int i = 0; i < 110; ++i) createPod(pods[i], teamTags(i % 7, "one"));
  for (int i = 0; i < 110; i += 3)
    annotate(pods[i], "Team=t" + std::to_string(i % 5) + ",Stage=two");
  for (int i = 1; i < 110; i += 4) annotate(pods[i], "");
  for (int i = 0; i < 110; i += 11) deletePod(pods[i]);

  ASSERT_TRUE(tagsConverge(pods, agent.get()));

  // The storm happened, the 400 happened, and both are spent or nearly.
  const auto log = proxyLog();
  int throttled = 0;
  int invalid = 0;
  for (const auto& a : log) {
    throttled += a.fault == "throttle";
    invalid += a.fault == "invalid";
  }
  // Half of the attempts, drawn at random: at least a quarter, and enough to matter.
  EXPECT_GE(throttled, 10) << "the storm must really have throttled";
  EXPECT_GE(throttled * 4, static_cast<int>(log.size()));
  ASSERT_EQ(invalid, 1);

  // Per call (amz-sdk-invocation-id), its attempts as they arrived.
  std::map<std::string, std::vector<ProxyAttempt>> calls;
  for (const auto& a : log) {
    ASSERT_FALSE(a.invocation.empty()) << a.action << ": every attempt names its call";
    calls[a.invocation].push_back(a);
  }
  int gaveUp = 0;
  int retried = 0;
  for (const auto& [id, attempts] : calls) {
    SCOPED_TRACE(attempts[0].action + " call " + id);
    ASSERT_LE(attempts.size(), 4u) << "at most 4 attempts per call";
    for (std::size_t i = 0; i < attempts.size(); ++i) {
      EXPECT_EQ(attempts[i].attempt, static_cast<int>(i) + 1) << "attempts numbered in order";
      EXPECT_EQ(attempts[i].action, attempts[0].action);
      if (i + 1 < attempts.size()) {
        // Only a throttle (or a 5xx, none here) is followed by another attempt.
        EXPECT_EQ(attempts[i].fault, "throttle") << "attempt " << i + 1 << " was retried";
      }
    }
    const auto& last = attempts.back();
    if (last.fault == "invalid") {
      EXPECT_EQ(attempts.size(), 1u) << "a 400 is never retried";
    } else if (last.fault == "throttle") {
      EXPECT_EQ(attempts.size(), 4u) << "a throttled call gives up only after 4 attempts";
      ++gaveUp;
    } else {
      EXPECT_EQ(last.status, 200);
    }
    retried += attempts.size() > 1;
  }
  EXPECT_GT(retried, 0);
  RecordProperty("ec2_calls", static_cast<int>(calls.size()));
  RecordProperty("ec2_attempts", static_cast<int>(log.size()));
  RecordProperty("throttled_attempts", throttled);
  RecordProperty("calls_that_gave_up", gaveUp);
  EXPECT_EQ(agent->terminate(), 0) << agent->output().substr(0, 20000);
}

}  // namespace
}  // namespace eni::faults
