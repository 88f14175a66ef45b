// IMDS down when the agent starts (and no --region): the agent serves its probes, says on
// /readyz that it waits for IMDS, retries with backoff, and once IMDS answers it starts, becomes
// ready and tags. A SIGTERM while it waits stops it cleanly.
#include <csignal>

#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

using ImdsDrill = Drill;

constexpr const char* kWaiting = "cannot read the AWS region from IMDS, will retry";

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(ImdsDrill, NotReadyNamingImdsWhileItIsDownThenReadyAndTaggingOnceItReturns) {
  createNamespace();
  createNode();
  auto pods = makePods(1, "imds");
  createPod(pods[0], R"({"Team":"Platform"})");

  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/down");
  // No region anywhere but IMDS.
  auto agent = startAgent({}, {"AWS_REGION=", "AWS_DEFAULT_REGION="});
  // Two failed rounds: it retries rather than exits.
  ASSERT_TRUE(eventually([&] { return occurrences(agent->output(), kWaiting) >= 2; }, 240))
      << agent->output();
  ASSERT_TRUE(agent->running()) << agent->output();
  auto ready = probe("/readyz");
  EXPECT_EQ(ready.first, 503);
  EXPECT_NE(ready.second.find("imds"), std::string::npos) << ready.second;
  EXPECT_EQ(probe("/healthz").first, 200) << "alive while it waits for IMDS";
  EXPECT_FALSE(tagMismatches(pods).empty()) << "nothing can be tagged without a region";

  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/up");
  ASSERT_TRUE(agent->waitForOutput("\"msg\":\"ready\"", 60000)) << agent->output();
  EXPECT_NE(agent->output().find("region read from IMDS"), std::string::npos);
  EXPECT_EQ(probe("/readyz").first, 200);
  ASSERT_TRUE(tagsConverge(pods, agent.get()));
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

// IMDS answers an HTML page for placement/region (a captive portal, a broken proxy): that is not
// a region. The agent stays not ready and says why, and never calls EC2 with it; once IMDS
// answers a region, it starts.
TEST_F(ImdsDrill, AnHtmlPageForTheRegionIsRefusedAndNoEc2CallIsMade) {
  createNamespace();
  createNode();
  auto pods = makePods(1, "region");
  createPod(pods[0], R"({"Team":"Platform"})");
  stack().controlHttp(
      "POST", stack().imdsEndpoint + "/_emulator/answers",
      R"({"placement/region": "<html>\n<head><title>502 Bad Gateway</title></head>\n</html>\n"})");
  resetProxy();
  auto agent = startAgent({}, {"AWS_REGION=", "AWS_DEFAULT_REGION="});
  ASSERT_TRUE(eventually([&] { return occurrences(agent->output(), kWaiting) >= 2; }, 240))
      << agent->output();
  EXPECT_NE(agent->output().find("which is not an AWS region name"), std::string::npos)
      << agent->output();
  auto ready = probe("/readyz");
  EXPECT_EQ(ready.first, 503);
  EXPECT_NE(ready.second.find("imds: InvalidRegion"), std::string::npos) << ready.second;
  EXPECT_EQ(probe("/healthz").first, 200);
  EXPECT_TRUE(proxyLog().empty()) << "no EC2 call with a region that is not one";
  EXPECT_FALSE(tagMismatches(pods).empty());

  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/answers", "{}");
  ASSERT_TRUE(agent->waitForOutput("\"msg\":\"ready\"", 60000)) << agent->output();
  ASSERT_TRUE(tagsConverge(pods, agent.get()));
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

TEST_F(ImdsDrill, SigtermWhileWaitingForImdsExitsCleanly) {
  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/down");
  auto agent = startAgent({}, {"AWS_REGION=", "AWS_DEFAULT_REGION="});
  ASSERT_TRUE(agent->waitForOutput(kWaiting)) << agent->output();
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
  EXPECT_NE(agent->output().find("\"msg\":\"stopping\""), std::string::npos) << agent->output();
  EXPECT_EQ(occurrences(agent->output(), "\"msg\":\"ready\""), 0u);
}

}  // namespace
}  // namespace eni::faults
