// Peers that answer too much: IMDS answering 64 MiB, EC2 answering 40 MiB (both chunked, so
// only a client that counts what it buffers stops them). The real eni-agent refuses each answer
// past its cap with a clear error, stays alive, keeps its peak memory (VmHWM, a count of bytes,
// not a time) under the DaemonSet's 64 Mi limit, and does its job once the peer behaves.
#include <cstdio>
#include <fstream>

#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

using PeersDrill = Drill;

constexpr long kLimitKiB = 64 * 1024;  // the DaemonSet's memory limit

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// The process's peak resident set (VmHWM), in KiB; -1 when unreadable.
long peakKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_F(PeersDrill, ImdsAnswering64MiBLeavesTheAgentAliveAndSmall) {
  createNamespace();
  createNode();
  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/huge",
                      R"({"path":"placement/region","bytes":67108864,"chunked":true})");
  // No region anywhere but IMDS: the first thing the agent reads is the 64 MiB answer.
  auto agent = startAgent({}, {"AWS_REGION=", "AWS_DEFAULT_REGION="});
  ASSERT_TRUE(eventually([&] { return occurrences(agent->output(), "64 KiB cap") >= 2; }, 240))
      << agent->output();
  ASSERT_TRUE(agent->running()) << agent->output();
  const long whileRefusing = peakKiB(agent->pid());
  std::printf("agent VmHWM after refusing 64 MiB IMDS answers: %ld KiB\n", whileRefusing);
  EXPECT_GT(whileRefusing, 0);
  EXPECT_LT(whileRefusing, kLimitKiB) << "VmHWM " << whileRefusing << " KiB";
  EXPECT_EQ(probe("/healthz").first, 200);

  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/huge", "{}");
  ASSERT_TRUE(agent->waitForOutput("\"msg\":\"ready\"", 60000)) << agent->output();
  EXPECT_LT(peakKiB(agent->pid()), kLimitKiB);
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

TEST_F(PeersDrill, Ec2Answering40MiBLeavesTheAgentAliveAndSmall) {
  createNamespace();
  createNode();
  auto pods = makePods(2, "huge");
  for (auto& pod : pods) createPod(pod, R"({"Team":"Platform"})");
  // The agent's first eight EC2 attempts, whatever they are, get 40 MiB each.
  setProxyRules(R"([{"action":"*","fault":"huge","count":8}])");
  auto agent = startAgent();
  ASSERT_TRUE(eventually([&] {
    const Json::Value faults = proxyStats()["faults"];
    int n = 0;
    for (const auto& action : faults.getMemberNames()) n += faults[action].asInt();
    return n >= 8;
  })) << agent->output();
  ASSERT_TRUE(tagsConverge(pods, agent.get()));
  ASSERT_TRUE(agent->running());
  EXPECT_NE(agent->output().find("larger than the 8 MiB cap"), std::string::npos)
      << agent->output();
  const long peak = peakKiB(agent->pid());
  std::printf("agent VmHWM after eight 40 MiB EC2 answers: %ld KiB\n", peak);
  EXPECT_GT(peak, 0);
  EXPECT_LT(peak, kLimitKiB) << "VmHWM " << peak << " KiB after 8 answers of 40 MiB";
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

}  // namespace
}  // namespace eni::faults
