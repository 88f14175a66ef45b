// The real eni-agent binary with --run-as-user 65532:65532, started as root, in host mode against
// the test stack (moto through the fault proxy, the IMDS emulator), managing a veth in a network
// namespace of the test's making. The kernel shows every thread of the agent as 65532 with
// CAP_NET_ADMIN alone, and the agent still brings the ENI's link up with its MTU and puts its
// address, routes and rule on it; then removes them again on a reload. The control that the same
// changes fail without CAP_NET_ADMIN is PrivilegesNetns.WithoutNetAdminTheSameChangesAreRefused.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "agent/base/clock.h"
#include "agent/base/files.h"
#include "agent/base/json.h"
#include "ec2/curl_ec2_client.h"
#include "netlink/address_manager.h"
#include "netlink/link_dump.h"
#include "tests/support/eventually.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/static_credentials.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::TestStack;

constexpr const char* kNodeEni = "host-6";  // host mode's name for device index 6

/// The lines of /proc/<pid>/task/<tid>/status as key -> value ("Uid" -> "65532\t65532\t...").
std::map<std::string, std::string> taskStatus(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(readFile(path).value_or(""));
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = value;
  }
  return out;
}

/// What is off in any thread of `pid` compared with 65532:65532 and CAP_NET_ADMIN alone (bit 12),
/// or "" when every thread is that; `threads` gets how many were looked at.
std::string offFromNobodyWithNetAdmin(pid_t pid, int& threads) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return "cannot list " + tasks;
  std::string off;
  threads = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    ++threads;
    auto status = taskStatus(tasks + "/" + entry->d_name + "/status");
    const std::map<std::string, std::string> want = {{"Uid", "65532\t65532\t65532\t65532"},
                                                     {"Gid", "65532\t65532\t65532\t65532"},
                                                     {"Groups", ""},
                                                     {"CapEff", "0000000000001000"},
                                                     {"CapPrm", "0000000000001000"},
                                                     {"CapAmb", "0000000000001000"},
                                                     {"NoNewPrivs", "1"}};
    for (const auto& [key, value] : want) {
      if (status[key] != value) {
        off += std::string("thread ") + entry->d_name + " " + key + "=\"" + status[key] + "\" ";
      }
    }
  }
  closedir(dir);
  return off;
}

std::string tagOf(const NetworkInterface& e, const std::string& key) {
  for (const auto& t : e.tags) {
    if (t.key == key) return t.value;
  }
  return "";
}

class RunAsUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the agent starts as root and manages a namespace: run as root";
    Ec2ClientConfig c;
    c.region = TestStack::get().region;
    c.endpoint = TestStack::get().motoEndpoint;
    ec2_ = std::make_unique<CurlEc2Client>(c, creds_, clock_, sleeper_);
    auto ns = testing::TestNetns::create("eni-runas");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    char pattern[] = "/tmp/eni-runas-XXXXXX";
    dir_ = mkdtemp(pattern);
    // The state directory belongs to the user the agent becomes, as systemd's StateDirectory=
    // would make it; host.json stays root's, readable.
    ASSERT_EQ(chown(dir_.c_str(), 65532, 65532), 0);
    config_ = dir_ + "/host.json";
  }
  void TearDown() override {
    for (const auto& e : owned()) {
      if (e.attachment) (void)ec2_->detachNetworkInterface(e.attachment->attachmentId, true);
      (void)ec2_->deleteNetworkInterface(e.id);
    }
  }

  void writeConfig(const std::string& text) {
    std::ofstream out(config_, std::ios::trunc);
    out << text;
  }
  std::vector<NetworkInterface> owned() {
    auto r = ec2_->describeNetworkInterfaces(
        {}, {{"tag:eni-agent.io/instance-id", {TestStack::get().instanceId}},
             {"tag:NodeENI", {kNodeEni}}});
    return r.value_or(std::vector<NetworkInterface>{});
  }
  LinkInfo link(const std::string& name) {
    for (const auto& l : dumpLinks(ns_->path()).value_or(std::vector<LinkInfo>{})) {
      if (l.name == name) return l;
    }
    return {};
  }
  /// Whether the kernel shows `address` on `name` and one rule looking up `table`.
  bool addressed(const std::string& name, const std::string& address, std::uint32_t table) {
    NlAddressManager kernel(ns_->path());
    auto addresses = kernel.addresses(link(name).ifindex);
    auto rules = kernel.rules(table);
    return addresses && rules && rules->size() == 1 &&
           std::find(addresses->begin(), addresses->end(), address) != addresses->end();
  }
  bool noRules(std::uint32_t table) {
    auto rules = NlAddressManager(ns_->path()).rules(table);
    return rules && rules->empty();
  }

  SystemClock clock_;
  RealSleeper sleeper_;
  testing::StaticCredentials creds_;
  std::unique_ptr<CurlEc2Client> ec2_;
  std::optional<testing::TestNetns> ns_;
  std::string dir_;
  std::string config_;
};

TEST_F(RunAsUserTest, AsNobodyWithNetAdminAloneTheAgentStillConfiguresItsLink) {
  const auto& stack = TestStack::get();
  writeConfig(R"({"interfaces": [{"subnetID": ")" + stack.subnetC +
              R"(", "deviceIndex": 6, "mtu": 9001, "configureAddress": true,
                  "policyRouting": true}]})");
  testing::BackgroundProcess agent(
      {testing::agentBinary(), "run", "--mode=host", "--config=" + config_, "--state-dir=" + dir_,
       "--link-netns=" + ns_->path(), "--run-as-user=65532:65532"},
      testing::agentEnv());
  ASSERT_TRUE(agent.waitForOutput("first full reconcile done", 60000)) << agent.output();
  EXPECT_NE(agent.output().find(R"("msg":"dropped privileges","uid":"65532","gid":"65532",)"
                                R"("effective":"cap_net_admin","permitted":"cap_net_admin",)"
                                R"("ambient":"cap_net_admin")"),
            std::string::npos)
      << agent.output();

  auto mine = owned();
  ASSERT_EQ(mine.size(), 1u) << agent.output();
  ASSERT_TRUE(mine[0].attachment);
  EXPECT_EQ(tagOf(mine[0], "eni-agent.io/managed-by"), "eni-agent");
  // The kernel announces the ENI's interface, down at 1500: the agent, as 65532, brings it up
  // with its MTU through the socket it opened in the namespace as root.
  ASSERT_TRUE(ns_->addVeth("runas0", mine[0].macAddress, "runas0p", 1500));
  EXPECT_TRUE(testing::eventually([&] {
    const LinkInfo l = link("runas0");
    return l.adminUp() && l.mtu == 9001;
  })) << agent.output();
  const std::uint32_t table = 10000 + static_cast<std::uint32_t>(mine[0].attachment->deviceIndex);
  EXPECT_TRUE(testing::eventually([&] {
    return addressed("runas0", mine[0].privateIpAddress + "/17", table);
  })) << agent.output();

  // Every thread, the AWS worker and the HTTP servers' started after the drop among them.
  int threads = 0;
  EXPECT_EQ(offFromNobodyWithNetAdmin(agent.pid(), threads), "");
  EXPECT_GT(threads, 1) << "the threads started after the drop were looked at too";
  const auto leader = taskStatus("/proc/" + std::to_string(agent.pid()) + "/status");
  EXPECT_EQ(leader.at("CapEff"), "0000000000001000");
  EXPECT_EQ(leader.at("CapPrm"), "0000000000001000");
  EXPECT_EQ(leader.at("Uid"), "65532\t65532\t65532\t65532");
  struct stat state {};
  ASSERT_EQ(stat((dir_ + "/state.json").c_str(), &state), 0) << agent.output();
  EXPECT_EQ(state.st_uid, 65532u) << "the state file is written as the dropped user";

  // A reload that wants nothing, read as 65532: the agent removes the rule, detaches and deletes.
  writeConfig(R"({"interfaces": []})");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(agent.waitForOutput("host config reloaded")) << agent.output();
  EXPECT_TRUE(testing::eventually([&] { return owned().empty() && noRules(table); }))
      << agent.output();
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

// Kubernetes mode reads its kubeconfig and token after the drop. The DaemonSet's fsGroup makes the
// kubelet give the token to group 65532, mode 0640: the test lays the files out that way and the
// agent becomes ready as 65532. With the token root's and 0600 (runAsUser 0 without fsGroup) it
// cannot read it and stays not ready, saying why. Its netlink socket was opened in --link-netns
// before the drop and subscribed after it.
TEST_F(RunAsUserTest, InKubernetesModeItReadsTheTokenThroughTheGroupFsGroupGivesIt) {
  const auto& stack = TestStack::get();
  const std::string token = dir_ + "/token";
  const std::string kubeconfig = dir_ + "/kubeconfig";
  {
    auto config = parseJson(readFile(stack.agentKubeconfig).value_or(""));
    ASSERT_TRUE(config) << "the stack's agent kubeconfig is JSON";
    Json::Value& user = (*config)["users"][0]["user"];
    std::ofstream(token) << readFile(user["tokenFile"].asString()).value_or("");
    user["tokenFile"] = token;
    std::ofstream(kubeconfig) << config->toStyledString();
  }
  for (const auto& path : {token, kubeconfig}) {
    ASSERT_EQ(chown(path.c_str(), 0, 65532), 0);
    ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  }
  const std::vector<std::string> args = {testing::agentBinary(),      "run",
                                         "--mode=kubernetes",         "--kubeconfig=" + kubeconfig,
                                         "--node-name=runas-node",    "--link-netns=" + ns_->path(),
                                         "--run-as-user=65532:65532", "--log-format=json"};
  {
    testing::BackgroundProcess agent(args, testing::agentEnv());
    ASSERT_TRUE(agent.waitForOutput(R"("msg":"ready")", 60000)) << agent.output();
    EXPECT_NE(agent.output().find(R"("msg":"dropped privileges","uid":"65532")"), std::string::npos)
        << agent.output();
    int threads = 0;
    EXPECT_EQ(offFromNobodyWithNetAdmin(agent.pid(), threads), "");
    EXPECT_EQ(agent.terminate(), 0) << agent.output();
  }

  ASSERT_EQ(chmod(token.c_str(), 0600), 0);
  testing::BackgroundProcess agent(args, testing::agentEnv());
  ASSERT_TRUE(agent.waitForOutput("not ready, will retry", 60000)) << agent.output();
  ASSERT_TRUE(agent.waitForOutput(token + ": Permission denied", 60000)) << agent.output();
  EXPECT_EQ(agent.output().find(R"("msg":"ready")"), std::string::npos) << agent.output();
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

}  // namespace
}  // namespace eni
