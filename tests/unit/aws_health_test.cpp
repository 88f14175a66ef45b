#include "ec2/aws_health.h"

#include <gtest/gtest.h>

#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::ManualScheduler;

Error refusal(const std::string& awsCode) {
  Error e{ErrorCode::Permission, "CreateTags: AWS was not able to validate the credentials"};
  e.httpStatus = 401;
  e.awsCode = awsCode;
  e.requestId = "r-1";
  return e;
}

TEST(AwsHealth, GoodUntilAnAnswerSaysOtherwiseAndNeverProbesThen) {
  ManualScheduler clock;
  AwsHealth health(clock);
  EXPECT_EQ(health.problem(), "");
  EXPECT_FALSE(health.probeDue(Duration(60000))) << "a start costs no call";
  health.recordCall();
  health.recordSuccess();
  clock.advance(Duration(3600 * 1000));
  EXPECT_FALSE(health.probeDue(Duration(60000))) << "no extra call while healthy";
}

TEST(AwsHealth, RefusalNamesTheCodeUntilACallSucceeds) {
  ManualScheduler clock;
  AwsHealth health(clock);
  health.recordCall();
  health.recordRefusal(refusal("AuthFailure"), false);
  EXPECT_TRUE(health.refused());
  EXPECT_EQ(health.problem().rfind("AuthFailure: CreateTags: AWS was not able", 0), 0u)
      << health.problem();
  EXPECT_NE(health.problem().find("request-id r-1"), std::string::npos) << health.problem();
  health.recordRefusal(refusal("ExpiredToken"), false);
  EXPECT_EQ(health.problem().rfind("ExpiredToken: ", 0), 0u) << "the latest answer wins";
  EXPECT_EQ(health.refusals(), 1u);
  health.recordSuccess();
  EXPECT_EQ(health.problem(), "");
  EXPECT_EQ(health.recoveries(), 1u);
}

TEST(AwsHealth, OnlyRefusalsCountNotOutagesOrThrottling) {
  ManualScheduler clock;
  AwsHealth health(clock);
  health.recordRefusal(Error{ErrorCode::Transient, "connection refused"}, false);
  health.recordRefusal(Error{ErrorCode::Throttled, "RequestLimitExceeded"}, true);
  health.recordRefusal(Error{ErrorCode::NotFound, "no such ENI"}, false);
  EXPECT_EQ(health.problem(), "");
  // A chain that cannot give credentials leaves the agent without them, whatever the class.
  health.recordRefusal(Error{ErrorCode::Internal, "IMDS role credentials: not JSON"}, true);
  EXPECT_EQ(health.problem().rfind("NoCredentials: no AWS credentials: IMDS role", 0), 0u)
      << health.problem();
  Error sts{ErrorCode::Permission, "STS AssumeRoleWithWebIdentity: token expired"};
  sts.awsCode = "ExpiredTokenException";
  health.recordRefusal(sts, true);
  EXPECT_EQ(health.problem().rfind("ExpiredTokenException: ", 0), 0u) << health.problem();
}

TEST(AwsHealth, WhileRefusedAtMostOneProbePerIntervalCountedFromTheLastCall) {
  ManualScheduler clock;
  AwsHealth health(clock);
  const Duration minute(60000);
  health.recordCall();
  health.recordRefusal(refusal("AuthFailure"), false);
  int probes = 0;
  // Ten minutes, looked at every second as the agent's report timer does; each probe is a call.
  for (int second = 0; second < 600; ++second) {
    clock.advance(Duration(1000));
    if (health.probeDue(minute)) {
      ++probes;
      health.recordCall();
      health.recordRefusal(refusal("AuthFailure"), false);
    }
  }
  EXPECT_EQ(probes, 10);
  // Other calls (a tagger retry) push the probe back: it is only for when nothing else calls.
  clock.advance(Duration(59000));
  health.recordCall();
  clock.advance(Duration(59000));
  EXPECT_FALSE(health.probeDue(minute));
  clock.advance(Duration(1000));
  EXPECT_TRUE(health.probeDue(minute));
}

TEST(AwsHealth, CodeTokenKeepsTheReadinessForm) {
  Error dotted = refusal("AuthFailure.ServiceLinkedRoleCreationNotPermitted");
  EXPECT_EQ(refusalCode(dotted, false), "AuthFailure-ServiceLinkedRoleCreationNotPermitted");
  EXPECT_EQ(refusalCode(Error{ErrorCode::Permission, "x"}, false), "AccessDenied");
  EXPECT_EQ(refusalCode(Error{ErrorCode::Permission, "x"}, true), "NoCredentials");
}

}  // namespace
}  // namespace eni
