// `eni-agent status` as an operator runs it: the real binary reads a Node's eni-agent.io/state
// annotation from the real kube-apiserver (as the agent's ServiceAccount), or host mode's state
// file, and merges the live links of its own namespace.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/base/json.h"
#include "agent/state/node_state.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::agentBinary;
using testing::runProcess;
using testing::TestStack;

NodeState sampleState() {
  NodeState s;
  s.instanceId = "i-status0123";
  EniRecord e;
  e.mac = "02:de:ad:00:00:01";  // no link has it here: "missing"
  e.deviceIndex = 1;
  e.subnet = "subnet-status";
  e.tags = {{"Team", "Platform"}, {"CostCenter", "1234"}};
  e.hash = "adee2f3e0055a9f5";
  e.pods["default/web"] = PodRecord{"uid-web", "10.0.3.7"};
  s.enis["eni-0status000000001"] = e;
  // Loopback's all-zero MAC: a live link every namespace has, so the merge shows real values.
  s.attachments.push_back({"storage", "eni-0status000000002", "eni-attach-0status", 2, "lo", 9001,
                           AttachmentPhase::Attached, "Configured", "00:00:00:00:00:00"});
  return s;
}

void applyNode(const std::string& name, const std::string& stateJson) {
  const auto& stack = TestStack::get();
  const std::string path = "/tmp/eni-status-node-" + name + ".json";
  Json::Value node;
  node["apiVersion"] = "v1";
  node["kind"] = "Node";
  node["metadata"]["name"] = name;
  if (!stateJson.empty()) node["metadata"]["annotations"][kNodeStateAnnotation] = stateJson;
  std::ofstream(path) << toJson(node);
  auto r = runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "apply", "-f", path});
  ASSERT_EQ(r.status, 0) << r.err;
}

std::vector<std::string> kubeArgs(const std::string& node) {
  return {agentBinary(), "status", "--kubeconfig", TestStack::get().agentKubeconfig,
          "--node-name", node};
}

TEST(StatusCommand, ShowsTheNodeAnnotationMergedWithLiveLinks) {
  applyNode("status-node", *encodeNodeState(sampleState()));

  auto args = kubeArgs("status-node");
  args.insert(args.end(), {"--output", "json"});
  auto r = runProcess(args);
  ASSERT_EQ(r.status, 0) << r.err;
  auto parsed = parseJson(r.out);
  ASSERT_TRUE(parsed) << r.out;
  const Json::Value& root = *parsed;
  EXPECT_EQ(root["mode"].asString(), "kubernetes");
  EXPECT_EQ(root["node"].asString(), "status-node");
  EXPECT_EQ(root["instanceId"].asString(), "i-status0123");
  ASSERT_EQ(root["enis"].size(), 2u) << r.out;
  const Json::Value& pods = root["enis"][0];
  EXPECT_EQ(pods["eniId"].asString(), "eni-0status000000001");
  EXPECT_EQ(pods["link"].asString(), "missing");
  EXPECT_EQ(pods["tags"]["Team"].asString(), "Platform");
  EXPECT_EQ(pods["pods"][0]["name"].asString(), "web");
  EXPECT_EQ(pods["pods"][0]["ip"].asString(), "10.0.3.7");
  const Json::Value& attached = root["enis"][1];
  EXPECT_EQ(attached["nodeEni"].asString(), "storage");
  EXPECT_EQ(attached["interface"].asString(), "lo");
  EXPECT_EQ(attached["link"].asString(), "up") << "loopback is up in every namespace";
  EXPECT_EQ(attached["mtu"].asInt(), 65536) << r.out;
  EXPECT_EQ(attached["wantedMtu"].asInt(), 9001);

  auto table = runProcess(kubeArgs("status-node"));
  ASSERT_EQ(table.status, 0) << table.err;
  EXPECT_NE(table.out.find("ENI "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("eni-0status000000001"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("CostCenter=1234,Team=Platform"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("default/web (10.0.3.7)"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("65536 (want 9001)"), std::string::npos) << table.out;
}

TEST(StatusCommand, SaysWhatIsMissingAndExits1) {
  applyNode("status-fresh-node", "");
  auto fresh = runProcess(kubeArgs("status-fresh-node"));
  EXPECT_EQ(fresh.status, 1);
  EXPECT_NE(fresh.err.find("node status-fresh-node has no eni-agent.io/state annotation yet"),
            std::string::npos)
      << fresh.err;

  auto absent = runProcess(kubeArgs("no-such-node"));
  EXPECT_EQ(absent.status, 1);
  EXPECT_NE(absent.err.find("node no-such-node does not exist"), std::string::npos) << absent.err;

  auto noName = runProcess(
      {agentBinary(), "status", "--kubeconfig", TestStack::get().agentKubeconfig}, {"NODE_NAME="});
  EXPECT_EQ(noName.status, 1);
  EXPECT_NE(noName.err.find("--node-name"), std::string::npos) << noName.err;

  const std::string unreachable = "/tmp/eni-status-unreachable-kubeconfig";
  std::ofstream(unreachable) << "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                                "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
                                "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                                "users: [{name: u, user: {token: t}}]\n";
  auto down = runProcess(
      {agentBinary(), "status", "--kubeconfig", unreachable, "--node-name", "status-node"});
  EXPECT_EQ(down.status, 1);
  EXPECT_NE(down.err.find("cannot get node status-node"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("127.0.0.1:1"), std::string::npos) << down.err;

  applyNode("status-bad-node", "{\"version\":99}");
  auto bad = runProcess(kubeArgs("status-bad-node"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("version 99"), std::string::npos) << bad.err;
}

TEST(StatusCommand, HostModeReadsTheStateFile) {
  const std::string dir = "/tmp/eni-status-host-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  auto missing = runProcess({agentBinary(), "status", "--mode", "host", "--state-dir", dir});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("no state file at " + dir + "/state.json"), std::string::npos)
      << missing.err;

  std::ofstream(dir + "/state.json") << "{\"version\":1,";
  auto broken = runProcess({agentBinary(), "status", "--mode", "host", "--state-dir", dir});
  EXPECT_EQ(broken.status, 1);
  EXPECT_NE(broken.err.find(dir + "/state.json: "), std::string::npos) << broken.err;

  std::ofstream(dir + "/state.json", std::ios::trunc) << *encodeNodeState(sampleState());
  auto r = runProcess(
      {agentBinary(), "status", "--mode", "host", "--state-dir", dir, "--output", "json"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto parsed = parseJson(r.out);
  ASSERT_TRUE(parsed) << r.out;
  EXPECT_EQ((*parsed)["mode"].asString(), "host");
  EXPECT_EQ((*parsed)["source"].asString(), dir + "/state.json");
  EXPECT_EQ((*parsed)["enis"].size(), 2u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace eni
