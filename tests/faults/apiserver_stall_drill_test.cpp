// The API server's connection stops forwarding while TCP stays up, as a hung L7 load balancer
// does (tests/env/stall_proxy.py between the agent and the kube-apiserver). Once its watches have
// been silent for --watch-idle-timeout, the agent checks the connection, gets no answer, closes it
// and re-opens its watches on a new connection. /readyz says the watches are down until they are
// back, and a pod created during the stall is tagged once connections work again.
#include "agent/base/json.h"
#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

class ApiServerStallDrill : public Drill {
 protected:
  void SetUp() override {
    Drill::SetUp();
    stallProxy("POST", "/reset");
  }
  void TearDown() override {
    stallProxy("POST", "/reset");
    Drill::TearDown();
  }
  Json::Value stallProxy(const std::string& method, const std::string& path,
                         const std::string& body = "") {
    return *parseJson(stack().controlHttp(method, stack().stallProxyControl + path, body));
  }
  int connections() { return stallProxy("GET", "/stats")["connections"].asInt(); }
};

TEST_F(ApiServerStallDrill, HungConnectionIsReplacedAndReadinessSaysSoMeanwhile) {
  createNamespace();
  createNode();
  auto pods = makePods(2, "stall");
  ASSERT_EQ(pods.size(), 2u);
  auto agent = startAgent({"--kubeconfig=" + stack().stallKubeconfig, "--enable-eni-manager=false"},
                          {"ENI_AGENT_WATCH_IDLE_TIMEOUT=3s"});
  ASSERT_TRUE(agent->waitForOutput("\"msg\":\"ready\"", 60000)) << agent->output();
  createPod(pods[0], R"({"Team":"Before"})");
  ASSERT_TRUE(eventually([&] { return conditionReason(pods[0]) == "Synced"; })) << agent->output();
  const int before = connections();

  // Every connection hangs, new ones too: the agent's connection check goes unanswered.
  stallProxy("POST", "/stall", R"({"new": true})");
  createPod(pods[1], R"({"Team":"During"})");
  std::pair<long, std::string> ready;
  ASSERT_TRUE(eventually([&] {
    ready = probe("/readyz");
    return ready.first == 503 && ready.second.find("kubernetes: WatchDown") != std::string::npos;
  })) << ready.first
      << " " << ready.second << "\n"
      << agent->output();
  EXPECT_EQ(probe("/healthz").first, 200);
  ASSERT_TRUE(eventually([&] { return connections() > before; }))
      << "the agent must try a new connection, not wait on the hung one";
  EXPECT_TRUE(agent->waitForOutput("the connection stalled, closed it to reconnect"))
      << agent->output();
  EXPECT_EQ(conditionReason(pods[1]), "") << "no watch works: the agent cannot have seen it";

  // Connections work again: the watches re-open, the agent is ready and tags the new pod.
  stallProxy("POST", "/unstall");
  ASSERT_TRUE(eventually([&] { return probe("/readyz").first == 200; }))
      << probe("/readyz").second << "\n"
      << agent->output();
  ASSERT_TRUE(tagsConverge(pods, agent.get()));
  EXPECT_TRUE(eventually([&] { return conditionReason(pods[1]) == "Synced"; }));
  EXPECT_GE(stallProxy("GET", "/stats")["closed_by_client"].asInt(), 1)
      << "the agent closed the hung connection";
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

}  // namespace
}  // namespace eni::faults
