// `eni-agent run --mode host` as systemd runs it, against the real stack: moto through the fault
// proxy, the IMDS emulator, and a network namespace of the test's making for the links (the test
// plays the kernel by adding a veth with the new ENI's MAC). sd_notify goes to a socket the test
// binds, as systemd's would be.
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "agent/base/clock.h"
#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/http/blocking_http_client.h"
#include "agent/state/node_state.h"
#include "ec2/curl_ec2_client.h"
#include "netlink/address_manager.h"
#include "netlink/link_dump.h"
#include "tests/support/eventually.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/static_credentials.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::agentBinary;
using testing::agentEnv;
using testing::BackgroundProcess;
using testing::runProcess;
using testing::TestStack;

std::string tempDir(const std::string& name) {
  std::string pattern = "/tmp/eni-host-" + name + "-XXXXXX";
  return mkdtemp(pattern.data());
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::map<std::string, int> proxyRequests() {
  auto stats = parseJson(
      TestStack::get().controlHttp("GET", TestStack::get().ec2ProxyEndpoint + "/_proxy/stats"));
  std::map<std::string, int> out;
  if (!stats) return out;
  const Json::Value& requests = (*stats)["requests"];
  for (const auto& name : requests.getMemberNames()) out[name] = requests[name].asInt();
  return out;
}

int reads(const std::map<std::string, int>& requests) {
  int n = 0;
  for (const auto& [action, count] : requests) {
    if (action.rfind("Describe", 0) == 0) n += count;
  }
  return n;
}

std::string describe(const std::map<std::string, int>& requests) {
  std::string out;
  for (const auto& [action, count] : requests) out += action + "=" + std::to_string(count) + " ";
  return out;
}

std::string tagOf(const NetworkInterface& e, const std::string& key) {
  for (const auto& t : e.tags) {
    if (t.key == key) return t.value;
  }
  return "";
}

class HostModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "host mode manages links in a network namespace: run as root";
    Ec2ClientConfig c;
    c.region = TestStack::get().region;
    c.endpoint = TestStack::get().motoEndpoint;
    ec2_ = std::make_unique<CurlEc2Client>(c, creds_, clock_, sleeper_);
    auto ns = testing::TestNetns::create("eni-host");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    dir_ = tempDir("state");
    config_ = dir_ + "/host.json";
  }

  std::vector<std::string> args() const {
    return {agentBinary(),         "run",
            "--mode=host",         "--config=" + config_,
            "--state-dir=" + dir_, "--link-netns=" + ns_->path()};
  }
  std::vector<NetworkInterface> ownedHostEnis(const std::string& key) {
    auto r = ec2_->describeNetworkInterfaces(
        {},
        {{"tag:eni-agent.io/instance-id", {TestStack::get().instanceId}}, {"tag:NodeENI", {key}}});
    EXPECT_TRUE(r) << r.error().describe();
    return r.value_or(std::vector<NetworkInterface>{});
  }
  NetworkInterface eni(const std::string& id) {
    auto r = ec2_->describeNetworkInterfaces({id}, {});
    EXPECT_TRUE(r && r->size() == 1);
    return r && !r->empty() ? r->front() : NetworkInterface{};
  }
  /// An ENI attached to the stack's instance, carrying a tag someone else set.
  NetworkInterface foreignEni() {
    CreateEniRequest request;
    request.subnetId = TestStack::get().subnetA;
    request.tags = {{"Owner", "someone-else"}};
    auto created = ec2_->createNetworkInterface(request);
    EXPECT_TRUE(created);
    auto instance = ec2_->describeInstance(TestStack::get().instanceId);
    std::int64_t index = 10;
    for (const auto& n : instance->networkInterfaces) {
      if (n.attachment) index = std::max(index, n.attachment->deviceIndex + 1);
    }
    auto attached = ec2_->attachNetworkInterface(created->id, TestStack::get().instanceId, index);
    EXPECT_TRUE(attached);
    foreign_.push_back(created->id);
    return *created;
  }
  void TearDown() override {
    for (const auto& id : foreign_) {
      auto e = eni(id);
      if (e.attachment) (void)ec2_->detachNetworkInterface(e.attachment->attachmentId, true);
      (void)ec2_->deleteNetworkInterface(id);
    }
  }

  SystemClock clock_;
  RealSleeper sleeper_;
  testing::StaticCredentials creds_;
  std::unique_ptr<CurlEc2Client> ec2_;
  std::optional<testing::TestNetns> ns_;
  std::string dir_;
  std::string config_;
  std::vector<std::string> foreign_;
};

TEST_F(HostModeTest, TagsInterfacesLinksWarmRestartReloadAndCleanup) {
  const auto& stack = TestStack::get();
  const NetworkInterface foreign = foreignEni();
  writeFile(
      config_,
      R"({"tags": {"HostTeam": "platform"},
    "interfaces": [{"subnetID": ")" +
          stack.subnetC +
          R"(", "deviceIndex": 3, "mtu": 9001, "configureAddress": true, "policyRouting": true,
                         "securityGroupIDs": [")" +
          stack.securityGroupId + R"("]}]})");
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");

  std::string mac;
  std::uint32_t table = 0;
  {
    BackgroundProcess agent(args(), agentEnv());
    ASSERT_TRUE(agent.waitForOutput("first full reconcile done", 60000)) << agent.output();
    // Tags on the instance's ENI, the foreign tag untouched.
    const NetworkInterface tagged = eni(foreign.id);
    EXPECT_EQ(tagOf(tagged, "HostTeam"), "platform");
    EXPECT_EQ(tagOf(tagged, "Owner"), "someone-else");
    EXPECT_FALSE(tagOf(tagged, "eni-tagger.io/hash").empty());
    // One ENI for the interface, attached here, made once.
    auto mine = ownedHostEnis("host-3");
    ASSERT_EQ(mine.size(), 1u);
    ASSERT_TRUE(mine[0].attachment);
    EXPECT_EQ(mine[0].attachment->instanceId, stack.instanceId);
    EXPECT_EQ(tagOf(mine[0], "eni-agent.io/managed-by"), "eni-agent");
    EXPECT_EQ(proxyRequests()["CreateNetworkInterface"], 1) << describe(proxyRequests());
    EXPECT_EQ(proxyRequests()["AttachNetworkInterface"], 1) << describe(proxyRequests());
    mac = mine[0].macAddress;

    // The kernel announces the ENI's interface: it comes up with its MTU.
    ASSERT_TRUE(ns_->addVeth("hostm0", mac, "hostm0p"));
    EXPECT_TRUE(testing::eventually([&] {
      for (const auto& l : dumpLinks(ns_->path()).value_or(std::vector<LinkInfo>{})) {
        if (l.name == "hostm0" && l.adminUp() && l.mtu == 9001) return true;
      }
      return false;
    })) << agent.output();
    // configureAddress and policyRouting: the ENI's primary IPv4 with the subnet's prefix, a
    // table 10000+device index with the subnet and a default route, and the `from` rule.
    NlAddressManager kernel(ns_->path());
    int ifindex = 0;
    for (const auto& l : dumpLinks(ns_->path()).value_or(std::vector<LinkInfo>{})) {
      if (l.name == "hostm0") ifindex = l.ifindex;
    }
    table = 10000 + static_cast<std::uint32_t>(mine[0].attachment->deviceIndex);
    const std::string prefix = "/17";  // subnet c
    EXPECT_TRUE(testing::eventually([&] {
      auto addresses = kernel.addresses(ifindex);
      auto rules = kernel.rules(table);
      return addresses && rules && rules->size() == 1 &&
             std::find(addresses->begin(), addresses->end(), mine[0].privateIpAddress + prefix) !=
                 addresses->end();
    })) << agent.output();
    auto rules = kernel.rules(table);
    ASSERT_TRUE(rules && rules->size() == 1);
    EXPECT_EQ((*rules)[0].source, mine[0].privateIpAddress + "/32");
    auto routes = kernel.routes(table);
    ASSERT_TRUE(routes);
    EXPECT_EQ(routes->size(), 2u);
    EXPECT_EQ(agent.terminate(), 0) << agent.output();
  }
  // The state file records both, as the node annotation would.
  auto state = decodeNodeState(readFile(dir_ + "/state.json").value_or(""));
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(state->instanceId, stack.instanceId);
  EXPECT_EQ(state->enis.at(foreign.id).tags,
            (std::map<std::string, std::string>{{"HostTeam", "platform"}}));
  ASSERT_EQ(state->attachments.size(), 1u);
  EXPECT_EQ(state->attachments[0].interfaceName, "hostm0");
  std::string lowerMac = mac;
  std::transform(lowerMac.begin(), lowerMac.end(), lowerMac.begin(), ::tolower);
  EXPECT_EQ(state->attachments[0].mac, lowerMac);

  // eni-agent status reads that state file and the live link, found by the MAC recorded there.
  auto status = runProcess({agentBinary(), "status", "--mode", "host", "--state-dir", dir_,
                            "--link-netns", ns_->path(), "--output", "json"},
                           agentEnv());
  ASSERT_EQ(status.status, 0) << status.err;
  auto shown = parseJson(status.out);
  ASSERT_TRUE(shown) << status.out;
  bool listed = false;
  for (const auto& e : (*shown)["enis"]) {
    if (e["nodeEni"].asString() != "host-3") continue;
    listed = true;
    EXPECT_EQ(e["interface"].asString(), "hostm0");
    EXPECT_EQ(e["link"].asString(), "up");
    EXPECT_EQ(e["mtu"].asInt64(), 9001);
  }
  EXPECT_TRUE(listed) << status.out;

  // A restart reads nothing from EC2 and writes nothing.
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  BackgroundProcess agent(args(), agentEnv());
  ASSERT_TRUE(agent.waitForOutput("first full reconcile done", 60000)) << agent.output();
  EXPECT_NE(agent.output().find("\"warm_start\":\"true\""), std::string::npos);
  EXPECT_EQ(reads(proxyRequests()), 0) << describe(proxyRequests());
  EXPECT_TRUE(proxyRequests().empty()) << describe(proxyRequests());
  EXPECT_EQ(ownedHostEnis("host-3").size(), 1u);

  // SIGHUP with an invalid config: a clear log line naming the field; the old config stays.
  writeFile(config_, R"({"tags": {}, "interfaces": [{"subnetID": ")" + stack.subnetC +
                         R"(", "deviceIndex": 3, "mtu": 12000}]})");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(agent.waitForOutput("the old one stays in force")) << agent.output();
  EXPECT_NE(agent.output().find("interfaces[0].mtu: 12000 is outside 68-9001"), std::string::npos);
  EXPECT_EQ(tagOf(eni(foreign.id), "HostTeam"), "platform");

  // SIGHUP with a valid config that wants nothing: its tags go (the foreign one stays), its ENI
  // is detached and deleted.
  writeFile(config_, R"({"tags": {}, "interfaces": []})");
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(agent.waitForOutput("host config reloaded")) << agent.output();
  EXPECT_TRUE(testing::eventually([&] {
    return ownedHostEnis("host-3").empty() && tagOf(eni(foreign.id), "HostTeam").empty();
  })) << agent.output();
  // Its address, table and rule went with it.
  EXPECT_TRUE(testing::eventually([&] {
    auto rules = NlAddressManager(ns_->path()).rules(table);
    return rules && rules->empty();
  })) << agent.output();
  const NetworkInterface after = eni(foreign.id);
  EXPECT_EQ(tagOf(after, "Owner"), "someone-else");
  EXPECT_EQ(tagOf(after, "eni-tagger.io/hash"), "");
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

TEST_F(HostModeTest, KilledBetweenCreateAttachAndSaveItConvergesWithoutADuplicate) {
  const auto& stack = TestStack::get();
  writeFile(config_,
            R"({"interfaces": [{"subnetID": ")" + stack.subnetC + R"(", "deviceIndex": 4}]})");
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  auto env = agentEnv();
  env.push_back("ENI_AGENT_CRASH_POINT=created");
  auto created = runProcess(args(), env);
  EXPECT_EQ(created.status, 128 + SIGKILL) << created.err;
  ASSERT_EQ(ownedHostEnis("host-4").size(), 1u);
  EXPECT_FALSE(ownedHostEnis("host-4")[0].attachment);

  env.back() = "ENI_AGENT_CRASH_POINT=attached";
  auto attached = runProcess(args(), env);
  EXPECT_EQ(attached.status, 128 + SIGKILL) << attached.err;
  EXPECT_NE(attached.err.find("adopted own ENI"), std::string::npos) << attached.err;

  {
    BackgroundProcess agent(args(), agentEnv());
    ASSERT_TRUE(agent.waitForOutput("first full reconcile done", 60000)) << agent.output();
    auto mine = ownedHostEnis("host-4");
    ASSERT_EQ(mine.size(), 1u);
    ASSERT_TRUE(mine[0].attachment);
    EXPECT_EQ(mine[0].attachment->instanceId, stack.instanceId);
    EXPECT_EQ(proxyRequests()["CreateNetworkInterface"], 1) << describe(proxyRequests());
    EXPECT_EQ(proxyRequests()["AttachNetworkInterface"], 1) << describe(proxyRequests());
    EXPECT_EQ(agent.terminate(), 0);
  }
  // Clean up through the agent: an empty config removes its ENI.
  writeFile(config_, R"({"interfaces": []})");
  BackgroundProcess agent(args(), agentEnv());
  ASSERT_TRUE(agent.waitForOutput("first full reconcile done", 60000)) << agent.output();
  EXPECT_TRUE(ownedHostEnis("host-4").empty()) << agent.output();
  EXPECT_EQ(agent.terminate(), 0);
}

TEST_F(HostModeTest, ASecondCopyOnTheSameStateDirExitsWithTheLockError) {
  writeFile(config_, R"({"tags": {}})");
  BackgroundProcess first(args(), agentEnv());
  ASSERT_TRUE(first.waitForOutput("\"msg\":\"starting\"")) << first.output();
  auto second = runProcess(args(), agentEnv());
  EXPECT_EQ(second.status, 1);
  EXPECT_NE(second.err.find("is locked by another eni-agent (pid " + std::to_string(first.pid())),
            std::string::npos)
      << second.err;
  EXPECT_EQ(first.terminate(), 0);
}

TEST_F(HostModeTest, AnInvalidConfigAtStartExits1NamingTheField) {
  writeFile(config_, R"({"interfaces": [{"subnetID": "subnet-1", "mtu": 12000}]})");
  auto r = runProcess(args(), agentEnv());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("interfaces[0].mtu: 12000 is outside 68-9001"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(config_), std::string::npos) << r.err;
}

/// A datagram socket standing in for systemd's NOTIFY_SOCKET; collects what the agent sends.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    bound_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval timeout{0, 200 * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }
  /// Waits up to 200 ms for one message.
  void receive() {
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n > 0) messages_.emplace_back(buf, static_cast<std::size_t>(n));
  }
  std::size_t count(const std::string& what) const {
    std::size_t n = 0;
    for (const auto& m : messages_) n += m.find(what) != std::string::npos ? 1 : 0;
    return n;
  }
  bool seen(const std::string& what) const { return count(what) > 0; }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

TEST_F(HostModeTest, SdNotifySendsReadyStatusWatchdogAndStopping) {
  writeFile(config_, R"({"tags": {}})");
  NotifySocket notify(dir_ + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  auto env = agentEnv();
  env.push_back("NOTIFY_SOCKET=" + notify.path());
  env.push_back("WATCHDOG_USEC=200000");  // a kick every 100 ms
  BackgroundProcess agent(args(), env);
  for (int i = 0; i < 600 && !(notify.seen("READY=1") && notify.count("WATCHDOG=1") >= 3); ++i) {
    notify.receive();
  }
  EXPECT_TRUE(notify.seen("READY=1")) << agent.output();
  EXPECT_TRUE(notify.seen("STATUS=")) << agent.output();
  EXPECT_GE(notify.count("WATCHDOG=1"), 3u) << "the kick re-arms itself" << agent.output();
  EXPECT_EQ(agent.terminate(), 0);
  for (int i = 0; i < 50 && !notify.seen("STOPPING=1"); ++i) notify.receive();
  EXPECT_TRUE(notify.seen("STOPPING=1"));
}

// Credentials that AWS refuses (the signature-checking moto; the instance profile's keys from
// IMDS carry a wrong secret): the host agent sends no READY=1, and STATUS= and /readyz say why.
// Once the role is refreshed with the right secret, its one-read-per-interval check notices, the
// pass completes, and READY=1 follows.
TEST_F(HostModeTest, RefusedCredentialsHoldReadyAndStatusSaysWhyUntilTheRoleWorks) {
  const auto& stack = TestStack::get();
  auto serveRoleSecret = [&](const std::string& secret) {
    Json::Value role;
    role["Code"] = "Success";
    role["AccessKeyId"] = stack.motoAuthAccessKeyId;
    role["SecretAccessKey"] = secret;
    role["Token"] = "";
    role["Expiration"] = "2099-01-01T00:00:00Z";
    Json::Value answers;
    answers["iam/security-credentials/eni-agent-node"] = toJson(role);
    stack.controlHttp("POST", stack.imdsEndpoint + "/_emulator/answers", toJson(answers));
  };
  struct TruthAgain {
    ~TruthAgain() {
      TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/answers",
                                   "{}");
    }
  } truthAgain;
  serveRoleSecret("not-the-secret");
  writeFile(config_, R"({"tags": {"Team": "Platform"}})");
  NotifySocket notify(dir_ + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  auto env = agentEnv();
  std::string health;
  for (const auto& kv : env) {
    const std::string key = "ENI_AGENT_HEALTH_PROBE_BIND_ADDRESS=";
    if (kv.rfind(key, 0) == 0) health = kv.substr(key.size());
  }
  for (const char* kv :
       {"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "ENI_AGENT_AWS_PROBE_INTERVAL_MS=1000"}) {
    env.push_back(kv);
  }
  env.push_back("AWS_ENDPOINT_URL_EC2=" + stack.authProxyEndpoint);
  env.push_back("NOTIFY_SOCKET=" + notify.path());
  BackgroundProcess agent(args(), env);
  for (int i = 0; i < 600 && !notify.seen("aws: AuthFailure"); ++i) notify.receive();
  EXPECT_TRUE(notify.seen("STATUS=not ready: ")) << agent.output();
  EXPECT_TRUE(notify.seen("aws: AuthFailure")) << agent.output();
  EXPECT_FALSE(notify.seen("READY=1"));
  BlockingHttpClient http;
  HttpRequest readyz;
  readyz.url = "http://" + health + "/readyz";
  Result<HttpResponse> answer = fail(ErrorCode::Internal, "not asked");
  for (int i = 0; i < 100; ++i) {  // the health server takes the news at the next report tick
    answer = http.perform(readyz);
    if (answer && answer->body.find("AuthFailure") != std::string::npos) break;
    notify.receive();
  }
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->status, 503);
  EXPECT_NE(answer->body.find("aws: AuthFailure"), std::string::npos) << answer->body;

  serveRoleSecret(stack.motoAuthSecretAccessKey);
  for (int i = 0; i < 600 && !notify.seen("READY=1"); ++i) notify.receive();
  EXPECT_TRUE(notify.seen("READY=1")) << agent.output();
  EXPECT_NE(agent.output().find("first full reconcile done"), std::string::npos);
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

// IMDS down at start and no region given: the agent waits (alive for the watchdog, not ready,
// STATUS= says why) instead of exiting into systemd's start limit, and starts once IMDS answers.
TEST_F(HostModeTest, ImdsDownAtStartWaitsWithTheWatchdogFedThenBecomesReady) {
  const auto& stack = TestStack::get();
  writeFile(config_, R"({"tags": {}})");
  NotifySocket notify(dir_ + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  struct ImdsUpAgain {
    ~ImdsUpAgain() {
      TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/up");
    }
  } imdsUpAgain;
  stack.controlHttp("POST", stack.imdsEndpoint + "/_emulator/down");
  auto env = agentEnv();
  env.push_back("AWS_REGION=");
  env.push_back("AWS_DEFAULT_REGION=");
  env.push_back("NOTIFY_SOCKET=" + notify.path());
  env.push_back("WATCHDOG_USEC=200000");
  BackgroundProcess agent(args(), env);
  ASSERT_TRUE(agent.waitForOutput("cannot read the AWS region from IMDS, will retry", 60000))
      << agent.output();
  for (int i = 0; i < 100 && notify.count("WATCHDOG=1") < 3; ++i) notify.receive();
  EXPECT_TRUE(agent.running()) << agent.output();
  EXPECT_GE(notify.count("WATCHDOG=1"), 3u) << "fed while it waits";
  EXPECT_TRUE(notify.seen("STATUS=waiting for IMDS")) << agent.output();
  EXPECT_FALSE(notify.seen("READY=1"));

  stack.controlHttp("POST", stack.imdsEndpoint + "/_emulator/up");
  // Keep reading the socket: a full datagram queue blocks sd_notify, as systemd's would if it
  // stopped reading.
  for (int i = 0; i < 300 && !notify.seen("READY=1"); ++i) notify.receive();
  EXPECT_TRUE(notify.seen("READY=1")) << agent.output();
  EXPECT_NE(agent.output().find("first full reconcile done"), std::string::npos) << agent.output();
  EXPECT_NE(agent.output().find("region read from IMDS"), std::string::npos);
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

}  // namespace
}  // namespace eni
