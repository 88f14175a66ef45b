// Readiness: the log gets every failing check's detail, the unauthenticated /readyz only codes.
#include "agent/obs/readiness.h"

#include <gtest/gtest.h>

namespace eni {
namespace {

TEST(Readiness, ReadyWhenEveryCheckPasses) {
  Readiness readiness;
  readiness.addCheck("kubernetes", [] { return ""; });
  const ReadinessReport report = readiness.report();
  EXPECT_TRUE(report.ready);
  EXPECT_EQ(report.detail, "");
  EXPECT_EQ(report.summary, "");
}

TEST(Readiness, TheSummaryCarriesCodesOnlyAndTheDetailEverything) {
  Readiness readiness;
  readiness.addCheck("kubernetes", [] {
    return "ListFailed: Get https://10.0.0.1:6443/api/v1/pods: connection refused (http 0)";
  });
  readiness.addCheck("ec2", [] { return ""; });
  readiness.addCheck("imds", [] { return "ReadingRegion"; });
  const ReadinessReport report = readiness.report();
  EXPECT_FALSE(report.ready);
  EXPECT_EQ(report.summary, "kubernetes: ListFailed; imds: ReadingRegion");
  EXPECT_EQ(report.detail,
            "kubernetes: ListFailed: Get https://10.0.0.1:6443/api/v1/pods: connection refused "
            "(http 0); imds: ReadingRegion");
  EXPECT_EQ(readiness.reasons(), report.detail);
  EXPECT_FALSE(readiness.ready());
}

TEST(Readiness, AReasonWithoutACodeNeverReachesTheSummary) {
  // Free text, or text whose first word is followed by anything but ": ", is not a code.
  EXPECT_EQ(reasonCode("initial list in progress"), "NotReady");
  EXPECT_EQ(reasonCode("https://10.0.0.1:6443 refused"), "NotReady");
  EXPECT_EQ(reasonCode("Listing:no-space"), "NotReady");
  EXPECT_EQ(reasonCode(": detail"), "NotReady");
  EXPECT_EQ(reasonCode("AuthFailure: EC2 refused the credentials (request id r-1)"), "AuthFailure");
  EXPECT_EQ(reasonCode("Not-Ready-2"), "Not-Ready-2");
  Readiness readiness;
  readiness.addCheck("kubernetes", [] { return "cannot reach https://10.0.0.1:6443"; });
  EXPECT_EQ(readiness.report().summary, "kubernetes: NotReady");
}

}  // namespace
}  // namespace eni
