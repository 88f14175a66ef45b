// The eni-agent binary as an operator runs it, against the real test stack.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <fstream>

#include "agent/http/blocking_http_client.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::agentBinary;
using testing::agentEnv;
using testing::BackgroundProcess;
using testing::runProcess;
using testing::TestStack;

TEST(AgentCli, VersionAndHelp) {
  auto version = runProcess({agentBinary(), "version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out.rfind("eni-agent ", 0), 0u) << version.out;
  auto help = runProcess({agentBinary(), "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--aws-rate-limit-qps"), std::string::npos);
}

TEST(AgentCli, UsageErrorsExitWithStatus2AndSayWhatIsWrong) {
  auto bad = runProcess({agentBinary(), "--aws-rate-limit-qps=abc"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("--aws-rate-limit-qps"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("abc"), std::string::npos) << bad.err;
  auto unknown = runProcess({agentBinary(), "--no-such-flag"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("unknown flag --no-such-flag"), std::string::npos) << unknown.err;
  auto env = runProcess({agentBinary()}, {"ENI_AGENT_AWS_RATE_LIMIT_BURST=lots"});
  EXPECT_EQ(env.status, 2);
  EXPECT_NE(env.err.find("ENI_AGENT_AWS_RATE_LIMIT_BURST"), std::string::npos) << env.err;
}

TEST(AgentCli, MissingKubeconfigNamesTheFile) {
  auto r = runProcess({agentBinary(), "--kubeconfig=/nonexistent/kubeconfig", "--node-name=n"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/kubeconfig"), std::string::npos) << r.err;
}

TEST(AgentCli, InvalidKubeconfigNamesTheField) {
  const std::string path = "/tmp/eni-cli-bad-kubeconfig";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: missing\ncontexts: []\n";
  auto r = runProcess({agentBinary(), "--kubeconfig=" + path, "--node-name=n"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("current-context"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
}

// A NUL in the annotation (JSON's \u0000) is shown escaped, and the message goes on past it.
TEST(AgentCli, ValidateTagsPrintsTheWholeMessageWithANulEscaped) {
  auto r = runProcess({agentBinary(), "validate-tags", R"({"Te\u0000am":"x"})"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(R"(tag key "Te\x00am" contains "byte 0x00")"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("allowed are letters"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\0'), std::string::npos) << "no raw NUL reaches the terminal";
}

// The agent writes no tags and no hash tag for an empty set, so validate-tags prints no hash.
TEST(AgentCli, ValidateTagsOfAnEmptySetPrintsNoHash) {
  for (const char* empty : {"{}", " { } "}) {
    auto r = runProcess({agentBinary(), "validate-tags", empty});
    EXPECT_EQ(r.status, 0) << empty << ": " << r.err;
    EXPECT_EQ(r.out.find("hash:"), std::string::npos) << empty << ": " << r.out;
    EXPECT_NE(r.out.find("tags: none"), std::string::npos) << empty << ": " << r.out;
    EXPECT_NE(r.out.find("no eni-tagger.io/hash tag"), std::string::npos) << r.out;
  }
  auto one = runProcess({agentBinary(), "validate-tags", R"({"Team":"Platform"})"});
  EXPECT_EQ(one.status, 0) << one.err;
  EXPECT_NE(one.out.find("tags: {\"Team\":\"Platform\"}\nhash: "), std::string::npos) << one.out;
}

/// GET http://127.0.0.1:<port><path> -> {status, body}.
std::pair<long, std::string> probe(const std::vector<std::string>& env, const std::string& path) {
  const std::string variable = path == "/metrics" ? "ENI_AGENT_METRICS_BIND_ADDRESS="
                                                  : "ENI_AGENT_HEALTH_PROBE_BIND_ADDRESS=";
  std::string address;
  for (const auto& kv : env) {
    if (kv.rfind(variable, 0) == 0) address = kv.substr(kv.find('=') + 1);
  }
  BlockingHttpClient http;
  HttpRequest r;
  r.url = "http://" + address + path;
  auto response = http.perform(r);
  if (!response) return {0, response.error().message};
  return {response->status, response->body};
}

TEST(AgentCli, NotReadyWhileTheServerIsUnreachable) {
  const std::string path = "/tmp/eni-cli-unreachable-kubeconfig";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                         "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
                         "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                         "users: [{name: u, user: {token: t}}]\n";
  const auto env = agentEnv();
  BackgroundProcess agent({agentBinary(), "--kubeconfig=" + path, "--node-name=n",
                           "--log-format=json", "--region=us-east-1"},
                          env);
  // The first thing it asks the server for is the node's lease: the log line carries the failed
  // call's detail, and /readyz shows the same state from then.
  ASSERT_TRUE(agent.waitForOutput("lease: LeaseError: ")) << agent.output();
  auto ready = probe(env, "/readyz");
  EXPECT_EQ(ready.first, 503);
  // The probe is unauthenticated: the failing check and its code, never the server's address or
  // the error text. Those go to the log.
  EXPECT_EQ(ready.second, "not ready: lease: LeaseError\n");
  EXPECT_EQ(ready.second.find("127.0.0.1"), std::string::npos) << ready.second;
  EXPECT_EQ(probe(env, "/healthz").first, 200) << "alive while it retries";
  EXPECT_TRUE(agent.running()) << "an unreachable server is retried, not fatal";
  EXPECT_NE(agent.output().find("not ready, will retry"), std::string::npos) << agent.output();
  EXPECT_NE(agent.output().find("127.0.0.1:1"), std::string::npos) << agent.output();
  EXPECT_EQ(agent.output().find("\"msg\":\"ready\""), std::string::npos) << agent.output();
  EXPECT_EQ(agent.terminate(), 0);
}

/// An IPv4 address of this machine that is not loopback, or "" when it has none.
std::string nonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if ((i->ifa_flags & IFF_LOOPBACK) != 0 || (i->ifa_flags & IFF_UP) == 0) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) out = text;
  }
  freeifaddrs(list);
  return out;
}

/// GET http://<hostPort><path>: the status, or 0 when nothing answers.
long statusAt(const std::string& hostPort, const std::string& path) {
  BlockingHttpClient http;
  HttpRequest r;
  r.url = "http://" + hostPort + path;
  auto response = http.perform(r);
  return response ? response->status : 0;
}

// /healthz and /readyz are unauthenticated and the DaemonSet's pod is on the host network: by
// default they listen on the node's loopback only (the kubelet probes from the node itself).
TEST(AgentCli, HealthProbesListenOnLoopbackOnlyByDefault) {
  const std::string external = nonLoopbackAddress();
  if (external.empty()) GTEST_SKIP() << "this machine has no non-loopback IPv4 address";
  const std::string kDefaultPort = "8081";
  if (statusAt("127.0.0.1:" + kDefaultPort, "/healthz") != 0 ||
      statusAt(external + ":" + kDefaultPort, "/healthz") != 0) {
    GTEST_SKIP() << "something else already listens on port " << kDefaultPort;
  }
  const std::string path = "/tmp/eni-cli-default-probe-kubeconfig";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                         "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
                         "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                         "users: [{name: u, user: {token: t}}]\n";
  std::vector<std::string> env;
  for (const auto& kv : agentEnv()) {
    if (kv.rfind("ENI_AGENT_HEALTH_PROBE_BIND_ADDRESS=", 0) != 0) env.push_back(kv);
  }
  BackgroundProcess agent({agentBinary(), "--kubeconfig=" + path, "--node-name=n",
                           "--log-format=json", "--region=us-east-1"},
                          env);
  ASSERT_TRUE(agent.waitForOutput("not ready, will retry")) << agent.output();
  EXPECT_EQ(statusAt("127.0.0.1:" + kDefaultPort, "/healthz"), 200) << agent.output();
  EXPECT_EQ(statusAt(external + ":" + kDefaultPort, "/healthz"), 0)
      << "/healthz answers on " << external;
  EXPECT_EQ(statusAt(external + ":" + kDefaultPort, "/readyz"), 0)
      << "/readyz answers on " << external;
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

TEST(AgentCli, ReadyAfterTheFirstListsUnderTheAgentsOwnRbac) {
  const auto& stack = TestStack::get();
  const auto env = agentEnv();
  BackgroundProcess agent({agentBinary(), "--kubeconfig=" + stack.agentKubeconfig,
                           "--node-name=cli-node", "--log-format=json"},
                          env);
  ASSERT_TRUE(agent.waitForOutput("\"msg\":\"ready\"")) << agent.output();
  EXPECT_EQ(probe(env, "/readyz"), (std::pair<long, std::string>{200, "ok\n"}));
  EXPECT_EQ(probe(env, "/healthz"), (std::pair<long, std::string>{200, "ok\n"}));
  // /metrics: DESIGN.md's names, and the counters moved: the tagger's cold-start Describe. No
  // NodeENI selects cli-node (the other tests' NodeENIs select labels it lacks), so the ENI manager
  // makes no EC2 call here at all.
  auto value = [](const std::string& text, const std::string& series) -> double {
    const auto at = text.find(series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 1));
  };
  const std::string describes =
      R"(eni_agent_aws_api_calls_total{operation="DescribeNetworkInterfaces",result="success"})";
  const std::string instances =
      R"(eni_agent_aws_api_calls_total{operation="DescribeInstances",result="success"})";
  // Every attempt is timed, so each call moved its operation's duration histogram too.
  const std::string describeDurations =
      R"(eni_agent_aws_api_duration_seconds_count{operation="DescribeNetworkInterfaces"})";
  const std::string instanceDurations =
      R"(eni_agent_aws_api_duration_seconds_count{operation="DescribeInstances"})";
  std::string text;
  // The first pass walks IMDS's interface map first (the stack's shared instance has many ENIs).
  for (int i = 0; i < 300; ++i) {
    text = probe(env, "/metrics").second;
    if (value(text, describes) >= 1 && value(text, describeDurations) >= 1) break;
    usleep(100000);
  }
  EXPECT_GE(value(text, describes), 1) << text;
  EXPECT_GE(value(text, describeDurations), 1) << text;
  EXPECT_LT(value(text, instances), 1) << "no DescribeInstances on a node no NodeENI selects\n"
                                       << text;
  EXPECT_LT(value(text, instanceDurations), 1) << text;
  EXPECT_NE(
      text.find(
          R"(eni_agent_aws_api_duration_seconds_bucket{operation="DescribeNetworkInterfaces",le="+Inf"})"),
      std::string::npos)
      << text;
  for (const char* name :
       {"eni_agent_aws_throttled_total", "eni_agent_imds_requests_total",
        "eni_agent_resolve_source_total", "eni_agent_pod_tag_sync_total",
        "eni_agent_tag_sync_duration_seconds_bucket",
        "eni_agent_link_configure_duration_seconds_count", "eni_agent_managed_enis",
        "eni_agent_reconcile_errors_total", "eni_agent_watch_restarts_total"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(text.find("eni_agent_imds_requests_total 0"), std::string::npos)
      << "IMDS was asked for the identity";
  // /metrics is reachable from the pod network (Prometheus scrapes it), unauthenticated: it names
  // no server, node, instance or ENI, only operations, results and counts.
  for (const std::string& secret : {stack.apiserverUrl, std::string("cli-node"), stack.instanceId,
                                    std::string("eni-"), std::string("AKIA")}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in /metrics:\n" << text;
  }
  EXPECT_EQ(agent.output().find("not ready"), std::string::npos) << agent.output();
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

std::string envValue(const std::vector<std::string>& env, const std::string& name) {
  for (const auto& kv : env) {
    if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
  }
  return {};
}

/// A counter of the agent's /metrics ("name{labels}"), or -1 when it is not there.
double metric(const std::vector<std::string>& env, const std::string& series) {
  const std::string text = probe(env, "/metrics").second;
  const auto at = text.find(series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 1));
}

// Two agents started for one node: the second waits for the node's lease, says which pod holds
// it, and neither reads for nor writes through the tagger until the first stops; then it takes
// over at its next read of the lease (the first released it) and becomes ready.
TEST(AgentCli, ASecondAgentForTheSameNodeWaitsForTheLeaseThenTakesOver) {
  const auto& stack = TestStack::get();
  const std::vector<std::string> args = {agentBinary(), "--kubeconfig=" + stack.agentKubeconfig,
                                         "--node-name=lease-node", "--log-format=json"};
  const auto envA = agentEnv();
  const auto envB = agentEnv();
  const std::string podA = envValue(envA, "POD_NAME");
  const std::string describes =
      R"(eni_agent_aws_api_calls_total{operation="DescribeNetworkInterfaces",result="success"})";
  BackgroundProcess a(args, envA);
  ASSERT_TRUE(a.waitForOutput("\"msg\":\"ready\"")) << a.output();
  BackgroundProcess b(args, envB);
  ASSERT_TRUE(b.waitForOutput("another agent holds this node's lease")) << b.output();
  EXPECT_NE(b.output().find("\"holder\":\"" + podA + "\""), std::string::npos) << b.output();
  // Readiness is published by the agent's report tick, which logs the reason when it changes.
  ASSERT_TRUE(b.waitForOutput("not ready, will retry")) << b.output();
  EXPECT_NE(b.output().find("lease: HeldByOther: held by " + podA), std::string::npos)
      << b.output();
  auto waiting = probe(envB, "/readyz");
  EXPECT_EQ(waiting.first, 503);
  EXPECT_NE(waiting.second.find("lease: HeldByOther"), std::string::npos) << waiting.second;
  EXPECT_TRUE(b.running());
  // The first agent made its cold-start Describe (after its first walk of IMDS, which takes
  // seconds on the stack's shared instance); the second made no EC2 call and never started.
  for (int i = 0; i < 300 && metric(envA, describes) < 1; ++i) usleep(100000);
  EXPECT_GE(metric(envA, describes), 1);
  EXPECT_LT(metric(envB, describes), 1) << b.output();
  EXPECT_EQ(b.output().find("\"msg\":\"ready\""), std::string::npos) << b.output();

  EXPECT_EQ(a.terminate(), 0) << a.output();
  EXPECT_NE(a.output().find("released the node lease"), std::string::npos) << a.output();
  ASSERT_TRUE(b.waitForOutput("acquired the node lease")) << b.output();
  ASSERT_TRUE(b.waitForOutput("\"msg\":\"ready\"")) << b.output();
  EXPECT_EQ(probe(envB, "/readyz").first, 200);
  for (int i = 0; i < 300 && metric(envB, describes) < 1; ++i) usleep(100000);
  EXPECT_GE(metric(envB, describes), 1) << "the second agent works now";
  EXPECT_EQ(b.terminate(), 0) << b.output();
}

TEST(Deployable, KustomizeAppliesWithServerDryRun) {
  const auto& stack = TestStack::get();
  auto r = runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "apply",
                       "--dry-run=server", "-k", std::string(ENI_SOURCE_DIR) + "/daemonset"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* object :
       {"namespace/eni-agent", "serviceaccount/eni-agent",
        "clusterrole.rbac.authorization.k8s.io/eni-agent",
        "clusterrolebinding.rbac.authorization.k8s.io/eni-agent",
        "role.rbac.authorization.k8s.io/eni-agent-lease",
        "rolebinding.rbac.authorization.k8s.io/eni-agent-lease",
        "customresourcedefinition.apiextensions.k8s.io/nodeenis.networking.k8s.aws",
        "networkpolicy.networking.k8s.io/eni-agent", "daemonset.apps/eni-agent",
        "validatingadmissionpolicy.admissionregistration.k8s.io/eni-agent-own-node-only",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/eni-agent-own-node-only"}) {
    EXPECT_NE(r.out.find(object), std::string::npos) << object << " missing from: " << r.out;
  }
}

}  // namespace
}  // namespace eni
