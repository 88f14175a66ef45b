// Credentials that AWS refuses. The agent runs against the signature-checking moto (through its
// own fault proxy, which counts what the agent sends) with the IMDS instance-profile credentials
// of a node: the IMDS emulator serves the role's keys, first with a wrong secret. The agent is
// alive but not ready and says why; it checks with one cheap read per interval and nothing else;
// once the role is refreshed with the right secret it becomes ready, tags, and sends nothing
// extra while healthy.
#include <chrono>
#include <thread>

#include "agent/base/json.h"
#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

constexpr const char* kRolePath = "iam/security-credentials/eni-agent-node";
constexpr const char* kProbeLog = "AWS refused the credentials; checking them with one read";
constexpr int kProbeIntervalMs = 1000;

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string between(const std::string& text, const std::string& open, const std::string& close) {
  const auto start = text.find(open);
  if (start == std::string::npos) return "";
  const auto end = text.find(close, start + open.size());
  return text.substr(start + open.size(), end - start - open.size());
}

class AwsAuthDrill : public Drill {
 protected:
  void SetUp() override {
    Drill::SetUp();
    Ec2ClientConfig c;
    c.region = stack().region;
    c.endpoint = stack().motoAuthEndpoint;
    authEc2_ = std::make_unique<CurlEc2Client>(c, authCreds_, clock_, sleeper_);
    stack().controlHttp("POST", stack().authProxyEndpoint + "/_proxy/reset");
  }
  /// The instance profile's keys as IMDS serves them: the test user's key ID with `secret`.
  void serveRoleSecret(const std::string& secret) {
    Json::Value role;
    role["Code"] = "Success";
    role["Type"] = "AWS-HMAC";
    role["AccessKeyId"] = stack().motoAuthAccessKeyId;
    role["SecretAccessKey"] = secret;
    role["Token"] = "";  // moto refuses a session token on an IAM user's key
    role["Expiration"] = "2099-01-01T00:00:00Z";
    Json::Value answers;
    answers[kRolePath] = toJson(role);
    stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/answers", toJson(answers));
  }

  /// A branch ENI in the signature-checking moto, for a pod to come: {id, IP}. That moto is an EC2
  /// of its own, without this node's instance: the branch names the trunk IMDS lists for this
  /// instance (the main stack's), and its association with a trunk of that moto's makes Describe
  /// show it as a branch, which is what the agent checks before it tags an ENI named by a pod.
  std::pair<std::string, std::string> authEni() {
    auto vpc = authEc2_->call("CreateVpc", {{"CidrBlock", "10.77.0.0/16"}});
    EXPECT_TRUE(vpc) << vpc.error().describe();
    auto subnet =
        authEc2_->call("CreateSubnet", {{"VpcId", between(vpc.value_or(""), "<vpcId>", "</vpcId>")},
                                        {"CidrBlock", "10.77.1.0/24"}});
    EXPECT_TRUE(subnet) << subnet.error().describe();
    const std::string subnetId = between(subnet.value_or(""), "<subnetId>", "</subnetId>");
    auto trunk = authEc2_->call("CreateNetworkInterface",
                                {{"SubnetId", subnetId}, {"InterfaceType", "trunk"}});
    EXPECT_TRUE(trunk) << trunk.error().describe();
    CreateEniRequest request;
    request.subnetId = subnetId;
    request.tags = {{"vpcresources.k8s.aws/trunk-eni-id", stack().trunkEniId}};
    auto eni = authEc2_->createNetworkInterface(request);
    EXPECT_TRUE(eni) << eni.error().describe();
    if (!eni) return {};
    auto associated = authEc2_->call(
        "AssociateTrunkInterface",
        {{"BranchInterfaceId", eni->id},
         {"TrunkInterfaceId",
          between(trunk.value_or(""), "<networkInterfaceId>", "</networkInterfaceId>")},
         {"VlanId", "1"}});
    EXPECT_TRUE(associated) << associated.error().describe();
    return {eni->id, eni->privateIpAddress};
  }
  std::string tagOnAuthEni(const std::string& eni, const std::string& key) {
    auto described = authEc2_->describeNetworkInterfaces({eni}, {});
    if (!described || described->empty()) return "";
    for (const auto& t : described->front().tags) {
      if (t.key == key) return t.value;
    }
    return "";
  }

  /// What the agent sent to the signature-checking moto, in arrival order.
  std::vector<ProxyAttempt> authLog() {
    std::vector<ProxyAttempt> out;
    const Json::Value stats =
        *parseJson(stack().controlHttp("GET", stack().authProxyEndpoint + "/_proxy/stats"));
    for (const auto& e : stats["log"]) {
      ProxyAttempt a;
      a.action = e.get("action", "").asString();
      a.status = e["status"].isInt() ? e["status"].asInt() : 0;
      a.attempt = e.get("attempt", 0).asInt();
      out.push_back(std::move(a));
    }
    return out;
  }

  std::unique_ptr<testing::BackgroundProcess> startRefusedAgent() {
    return startAgent({"--enable-eni-manager=false"},
                      {"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=",
                       "AWS_ENDPOINT_URL_EC2=" + stack().authProxyEndpoint,
                       "ENI_AGENT_AWS_PROBE_INTERVAL_MS=" + std::to_string(kProbeIntervalMs)});
  }

  testing::StaticCredentials authCreds_{stack().motoAuthAccessKeyId,
                                        stack().motoAuthSecretAccessKey};
  std::unique_ptr<CurlEc2Client> authEc2_;
};

TEST_F(AwsAuthDrill, RefusedCredentialsAreNotReadyUntilTheRefreshedRoleWorks) {
  createNamespace();
  createNode();
  const auto [eni, eniIp] = authEni();
  ASSERT_FALSE(eni.empty());
  serveRoleSecret("not-the-secret");
  auto agent = startRefusedAgent();

  // Its cold-start read is refused: not ready, naming the code, and the log says it.
  std::pair<long, std::string> ready;
  ASSERT_TRUE(eventually([&] {
    ready = probe("/readyz");
    return ready.first == 503 && ready.second.find("aws: AuthFailure") != std::string::npos;
  })) << ready.first
      << " " << ready.second << "\n"
      << agent->output();
  EXPECT_EQ(probe("/healthz").first, 200) << "alive: a restart would not help";
  EXPECT_TRUE(agent->waitForOutput("AuthFailure")) << agent->output();

  // Nothing else calls, so it checks: one cheap read at a time, each a single attempt (a refusal
  // is never retried), and every call after the refused one is such a check.
  ASSERT_TRUE(eventually([&] { return occurrences(agent->output(), kProbeLog) >= 3; }))
      << agent->output();
  // The proxy logs a call when it arrives and its status when it answers: read the log at a
  // moment when no check is in flight.
  std::vector<ProxyAttempt> sent;
  ASSERT_TRUE(eventually([&] {
    sent = authLog();
    return !sent.empty() && sent.back().status != 0;
  })) << agent->output();
  const std::size_t checks = occurrences(agent->output(), kProbeLog);
  ASSERT_GE(sent.size(), 3u);
  for (const auto& a : sent) {
    EXPECT_EQ(a.action, "DescribeNetworkInterfaces");
    EXPECT_EQ(a.attempt, 1);
    EXPECT_EQ(a.status, 401);
  }
  // Besides the refused cold-start read, only the checks it logged went out (the log line comes
  // first, so the latest may still be on its way).
  EXPECT_LE(sent.size(), checks + 1);
  EXPECT_NE(probe("/readyz").second.find("AuthFailure"), std::string::npos);

  // The role is refreshed with the right secret: the next check fetches it and works.
  serveRoleSecret(stack().motoAuthSecretAccessKey);
  ASSERT_TRUE(eventually([&] { return probe("/readyz").first == 200; }))
      << probe("/readyz").second << "\n"
      << agent->output();
  EXPECT_TRUE(agent->waitForOutput("\"msg\":\"ready\"")) << agent->output();

  // It does its job again: a pod annotated now gets its ENI tagged.
  DrillPod pod;
  pod.name = "auth-0";
  pod.eni = eni;
  pod.ip = eniIp;  // the pod-eni annotation is used only for the ENI that holds the pod's IP
  createPod(pod, R"({"Team":"Platform"})");
  ASSERT_TRUE(eventually([&] { return tagOnAuthEni(eni, "Team") == "Platform"; }))
      << agent->output();

  // Healthy: no check goes out. Five probe intervals pass, as the agent's own log shows (each
  // report tick is a second; readiness is polled meanwhile), without a call.
  ASSERT_TRUE(eventually([&] { return conditionReason(pod) == "Synced"; })) << agent->output();
  const std::size_t afterRecovery = authLog().size();
  const std::size_t checksAfterRecovery = occurrences(agent->output(), kProbeLog);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(probe("/readyz").first, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(kProbeIntervalMs / 2));
  }
  EXPECT_EQ(authLog().size(), afterRecovery);
  EXPECT_EQ(occurrences(agent->output(), kProbeLog), checksAfterRecovery);
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

}  // namespace
}  // namespace eni::faults
