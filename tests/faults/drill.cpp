#include "tests/faults/drill.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "agent/base/json.h"
#include "agent/base/strings.h"
#include "agent/enimanager/eni_planner.h"
#include "agent/http/blocking_http_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "agent/kube/objects.h"
#include "agent/tagger/tagger.h"
#include "tests/support/eventually.h"

namespace eni::faults {

void Drill::SetUp() {
  admin_ = std::make_unique<CurlKubeClient>(http_, *loadKubeconfig(stack().adminKubeconfig));
  Ec2ClientConfig c;
  c.region = stack().region;
  c.endpoint = stack().motoEndpoint;
  moto_ = std::make_unique<CurlEc2Client>(c, creds_, clock_, sleeper_);
  name_ = lower(::testing::UnitTest::GetInstance()->current_test_info()->name());
  node_ = "fd-" + name_.substr(0, 40);
  ns_ = node_;
  env_ = testing::agentEnv();
  resetProxy();
}

void Drill::TearDown() {
  // A failed drill must not leave a broken peer behind for the next one.
  resetProxy();
  stack().controlHttp("POST", stack().imdsEndpoint + "/_emulator/reset");  // up, no odd answers
}

Result<Json::Value> Drill::call(const std::function<void(Callback<Json::Value>)>& start) {
  return testing::await<Json::Value>(loop_, start);
}

void Drill::createNamespace() {
  Json::Value ns;
  ns["metadata"]["name"] = ns_;
  auto r = call([&](auto done) {
    admin_->create(ObjectRef{{"/api/v1", "namespaces", false}, "", "", ""}, ns, done);
  });
  ASSERT_TRUE(r) << r.error().describe();
}

void Drill::createNode(const std::map<std::string, std::string>& labels) {
  Json::Value node;
  node["metadata"]["name"] = node_;
  for (const auto& [k, v] : labels) node["metadata"]["labels"][k] = v;
  node["spec"]["providerID"] = "aws:///us-east-1a/" + stack().instanceId;
  auto r = call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodes(), "", "", ""}, node, done);
  });
  ASSERT_TRUE(r) << r.error().describe();
}

void Drill::setNodeLabel(const std::string& key, const std::string& value) {
  Json::Value patch;
  patch["metadata"]["labels"][key] = value.empty() ? Json::Value() : Json::Value(value);
  auto r = call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::nodes(), "", node_, ""}, PatchType::Merge, patch, {},
                  done);
  });
  ASSERT_TRUE(r) << r.error().describe();
}

void Drill::createPod(DrillPod& pod, const std::string& annotation) {
  Json::Value object;
  object["metadata"]["name"] = pod.name;
  if (!annotation.empty()) object["metadata"]["annotations"]["eni-tagger.io/tags"] = annotation;
  object["metadata"]["annotations"][kPodEniAnnotation] = testing::podEniAnnotation(pod.eni, pod.ip);
  object["spec"]["nodeName"] = node_;
  object["spec"]["containers"][0]["name"] = "c";
  object["spec"]["containers"][0]["image"] = "registry.invalid/none";
  auto created = call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::pods(), ns_, "", ""}, object, done);
  });
  ASSERT_TRUE(created) << created.error().describe();
  Json::Value status;
  status["status"]["phase"] = "Running";
  status["status"]["podIP"] = pod.ip;
  status["status"]["podIPs"][0]["ip"] = pod.ip;
  auto patched = call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns_, pod.name, "status"}, PatchType::Merge,
                  status, {}, done);
  });
  ASSERT_TRUE(patched) << patched.error().describe();
  pod.annotation = annotation;
  pod.live = true;
  pod.created = true;
}

void Drill::annotate(DrillPod& pod, const std::string& annotation) {
  Json::Value patch;
  patch["metadata"]["annotations"]["eni-tagger.io/tags"] = annotation;
  auto r = call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns_, pod.name, ""}, PatchType::Merge, patch, {},
                  done);
  });
  ASSERT_TRUE(r) << r.error().describe();
  pod.annotation = annotation;
}

void Drill::deletePod(DrillPod& pod) {
  ASSERT_EQ(kubectl({"-n", ns_, "delete", "pod", pod.name, "--grace-period=0", "--force",
                     "--wait=false"}),
            0);
  pod.live = false;
}

void Drill::createNodeEni(const std::string& name, const std::string& selectorKey,
                          const std::string& selectorValue, const std::vector<std::string>& subnets,
                          int deviceIndex) {
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = name;
  neni["spec"]["nodeSelector"][selectorKey] = selectorValue;
  for (std::size_t i = 0; i < subnets.size(); ++i)
    neni["spec"]["subnetIDs"][static_cast<int>(i)] = subnets[i];
  neni["spec"]["securityGroupIDs"][0] = stack().securityGroupId;
  neni["spec"]["deviceIndex"] = deviceIndex;
  auto r = call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  });
  ASSERT_TRUE(r) << r.error().describe();
}

void Drill::deleteNodeEni(const std::string& name) {
  ASSERT_EQ(kubectl({"delete", "nodeeni", name, "--wait=false"}), 0);
}

Result<NodeEni> Drill::getNodeEni(const std::string& name) {
  auto r = call([&](auto done) {
    admin_->get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""}, done);
  });
  if (!r) return fail(r.error());
  return decodeNodeEni(*r);
}

std::vector<NodeEniAttachment> Drill::statusOf(const std::string& name) {
  // This node's NodeENIAttachment object (agents no longer write status.attachments).
  std::vector<NodeEniAttachment> out;
  auto r = call([&](auto done) {
    admin_->get(
        ObjectRef{ResourceKind::nodeEniAttachments(), "", nodeEniAttachmentName(name, node_), ""},
        done);
  });
  if (!r) return out;
  auto record = decodeNodeEniAttachment(*r);
  if (!record) return out;
  for (auto a : record->entries) {
    a.nodeId = node_;
    out.push_back(a);
  }
  if (!record->reason.empty())
    out.push_back(
        {node_, "", "", "", "", "", 0, 0, "failed", record->reason, "", false, "", "", ""});
  return out;
}

std::string Drill::conditionReason(const DrillPod& pod) {
  auto r = call([&](auto done) {
    admin_->get(ObjectRef{ResourceKind::pods(), ns_, pod.name, ""}, done);
  });
  if (!r) return "";
  for (const auto& c : arrayField(objectField(*r, "status"), "conditions")) {
    if (stringField(c, "type") == kTaggedCondition) return stringField(c, "reason");
  }
  return "";
}

int Drill::kubectl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {stack().kubectl, "--kubeconfig", stack().adminKubeconfig};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = testing::runProcess(argv);
  if (r.status != 0) ADD_FAILURE() << "kubectl failed: " << r.err;
  return r.status;
}

std::vector<DrillPod> Drill::makePods(int n, const std::string& prefix) {
  std::vector<DrillPod> pods;
  for (int i = 0; i < n; ++i) {
    std::vector<Tag> tags;
    for (const auto& [k, v] : kForeignTags) tags.push_back(Tag{k, v});
    auto eni = testing::makeBranchEni(*moto_, stack().subnetC, tags);
    DrillPod pod;
    pod.name = prefix + "-" + std::to_string(i);
    pod.eni = eni.id;
    pod.ip = eni.ip;
    pods.push_back(std::move(pod));
  }
  return pods;
}

std::map<std::string, TagSet> Drill::tagsOf(const std::vector<std::string>& enis) {
  std::map<std::string, TagSet> out;
  auto described = moto_->describeNetworkInterfaces(enis, {});
  EXPECT_TRUE(described) << described.error().describe();
  if (!described) return out;
  for (const auto& eni : *described) {
    TagSet& tags = out[eni.id];
    for (const auto& t : eni.tags) tags[t.key] = t.value;
  }
  return out;
}

::testing::AssertionResult Drill::tagsConverge(const std::vector<DrillPod>& pods,
                                               const testing::BackgroundProcess* agent) {
  std::vector<std::string> mismatches;
  if (eventually([&] {
        mismatches = tagMismatches(pods);
        return mismatches.empty();
      }))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches.size() << " pods' ENIs differ, first: " << mismatches.front() << "\n"
         << (agent ? agent->output().substr(0, 20000) : "");
}

std::vector<std::string> Drill::tagMismatches(const std::vector<DrillPod>& pods) {
  std::vector<std::string> enis;
  for (const auto& p : pods) enis.push_back(p.eni);
  const auto actual = tagsOf(enis);
  std::vector<std::string> out;
  for (const auto& p : pods) {
    TagSet want = kForeignTags;
    if (p.live && !p.annotation.empty()) {
      auto tags = parseTagAnnotation(p.annotation);
      EXPECT_TRUE(tags) << p.annotation;
      if (tags && !tags->empty()) {
        for (const auto& [k, v] : *tags) want[k] = v;
        want[kHashTagKey] = tagHash(*tags);
      }
    }
    auto it = actual.find(p.eni);
    TagSet have = it == actual.end() ? TagSet{} : it->second;
    // The VPC resource controller's own tags on a branch ENI are not the drill's business.
    std::erase_if(have, [](const auto& kv) {
      return kv.first.rfind("vpcresources.k8s.aws/", 0) == 0 || kv.first.rfind("eks:", 0) == 0;
    });
    if (have != want) {
      out.push_back(p.name + " (" + p.eni + "): want " + tagsToJson(want) + ", have " +
                    tagsToJson(have));
    }
  }
  return out;
}

std::vector<NetworkInterface> Drill::ownedEnis(const std::string& nodeEni) {
  std::vector<Filter> filters = {{"tag:Node", {node_}},
                                 {"tag:" + std::string(kManagedByTag), {"eni-agent"}}};
  if (!nodeEni.empty()) filters.push_back({"tag:NodeENI", {nodeEni}});
  auto r = moto_->describeNetworkInterfaces({}, filters);
  EXPECT_TRUE(r) << r.error().describe();
  return r.value_or(std::vector<NetworkInterface>{});
}

Json::Value Drill::proxyStats() {
  return *parseJson(stack().controlHttp("GET", stack().ec2ProxyEndpoint + "/_proxy/stats"));
}

std::vector<ProxyAttempt> Drill::proxyLog() {
  std::vector<ProxyAttempt> out;
  const Json::Value stats = proxyStats();  // the loop below must not outlive it
  for (const auto& e : stats["log"]) {
    ProxyAttempt a;
    a.action = e.get("action", "").asString();
    a.fault = e["fault"].isString() ? e["fault"].asString() : "";
    a.status = e["status"].isInt() ? e["status"].asInt() : 0;
    a.invocation = e.get("invocation", "").asString();
    a.attempt = e.get("attempt", 0).asInt();
    out.push_back(std::move(a));
  }
  return out;
}

void Drill::setProxyRules(const std::string& rulesJson) {
  stack().controlHttp("POST", stack().ec2ProxyEndpoint + "/_proxy/rules", rulesJson);
}

void Drill::resetProxy() {
  stack().controlHttp("POST", stack().ec2ProxyEndpoint + "/_proxy/reset");
}

std::vector<std::string> Drill::agentArgs(const std::vector<std::string>& extra) const {
  std::vector<std::string> args = {
      testing::agentBinary(), "--kubeconfig=" + stack().agentKubeconfig, "--node-name=" + node_,
      "--log-format=json", "--manage-links=false"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::unique_ptr<testing::BackgroundProcess> Drill::startAgent(
    const std::vector<std::string>& extraArgs, const std::vector<std::string>& extraEnv) {
  auto env = env_;
  env.insert(env.end(), extraEnv.begin(), extraEnv.end());
  return std::make_unique<testing::BackgroundProcess>(agentArgs(extraArgs), env);
}

std::pair<long, std::string> Drill::probe(const std::string& path) const {
  const std::string variable = path == "/metrics" ? "ENI_AGENT_METRICS_BIND_ADDRESS="
                                                  : "ENI_AGENT_HEALTH_PROBE_BIND_ADDRESS=";
  std::string address;
  for (const auto& kv : env_) {
    if (kv.rfind(variable, 0) == 0) address = kv.substr(variable.size());
  }
  BlockingHttpClient http;
  HttpRequest r;
  r.url = "http://" + address + path;
  auto response = http.perform(r);
  if (!response) return {0, response.error().message};
  return {response->status, response->body};
}

double Drill::metric(const std::string& series) const {
  const std::string text = probe("/metrics").second;
  const auto at = text.find(series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 1));
}

bool Drill::eventually(const std::function<bool()>& done, int rounds, int everyMs) {
  return testing::pollUntil(done, Duration(static_cast<std::int64_t>(rounds) * everyMs),
                            Duration(everyMs));
}

}  // namespace eni::faults
