#pragma once

// The tagger against the real stack: kube-apiserver (as the agent's ServiceAccount), moto through
// the fault proxy (which counts every EC2 call), and the IMDS emulator. The agent runs in-process
// so that its counters and node state can be read; a restart is a new agent on the same node.
// Shared by tagger_test.cpp (the seed scenarios and the tagger's contract) and
// tagger_security_test.cpp (what a pod, a peer or another node can forge).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "agent/base/event_loop.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/worker_pool.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_view.h"
#include "agent/state/annotation_state_store.h"
#include "agent/tagger/tagger.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "tests/support/static_credentials.h"
#include "tests/support/test_stack.h"

namespace eni::tagger_it {

using testing::await;
using testing::TestStack;

using testing::StaticCredentials;

inline EnvLookup imdsEnv() {
  return [](const std::string& n) -> std::optional<std::string> {
    if (n == "AWS_EC2_METADATA_SERVICE_ENDPOINT") return TestStack::get().imdsEndpoint;
    return std::nullopt;
  };
}

inline Json::Value proxyStats() {
  return *parseJson(
      TestStack::get().controlHttp("GET", TestStack::get().ec2ProxyEndpoint + "/_proxy/stats"));
}
inline std::uint64_t calls(const std::string& action) {
  return proxyStats()["requests"].get(action, 0).asUInt64();
}
inline std::uint64_t allCalls() {
  std::uint64_t n = 0;
  const Json::Value requests = proxyStats()["requests"];
  for (const auto& name : requests.getMemberNames()) n += requests[name].asUInt64();
  return n;
}
inline void resetProxy() {
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
}
inline std::uint64_t faults(const std::string& action) {
  return proxyStats()["faults"].get(action, 0).asUInt64();
}
inline void imdsControl(const std::string& hook, const std::string& body) {
  TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/" + hook, body);
}
/// Clears the IMDS emulator's stale keys, even when the test fails.
struct ImdsModesReset {
  ~ImdsModesReset() { imdsControl("reset", ""); }
};

/// One eni-agent (tagger part) for `node`, in-process, on its own loop.
struct Agent {
  /// `watchNamespace`: --watch-namespace, the pods of that namespace only.
  explicit Agent(const std::string& node, TaggerOptions extra = {},
                 const std::string& watchNamespace = "")
      : imds(imdsConfigFromEnv(imdsEnv()), clock, sleeper),
        ec2(makeEc2Config(), credentials, clock, sleeper),
        kube(http, *loadKubeconfig(TestStack::get().agentKubeconfig)),
        worker(loop),
        store(kube, loop, {node, Duration(50)}),
        tagger(kube, ec2, imds, loop, worker, clock, store, withNode(std::move(extra), node)),
        view(kube, loop, node,
             {[this](ChangeType t, const Json::Value& o) { tagger.onPod(t, o); },
              [this](ChangeType t, const Json::Value& o) { store.onNode(t, o); }, nullptr,
              [this] { tagger.start(); }},
             false, watchNamespace) {
    view.start();
  }
  static Ec2ClientConfig makeEc2Config() {
    Ec2ClientConfig c;
    c.region = TestStack::get().region;
    c.endpoint = TestStack::get().ec2ProxyEndpoint;
    c.qps = 5;
    c.burst = 10;
    c.backoffBase = Duration(50);
    return c;
  }
  static TaggerOptions withNode(TaggerOptions o, const std::string& node) {
    o.nodeName = node;
    o.retryDelay = Duration(500);
    return o;
  }
  /// Runs the loop until the tagger has nothing left to do (and has started).
  bool settle(int limitMs = 60000) {
    // Idle must hold across a short quiet period, so that watch events in flight are seen.
    int quietRounds = 0;
    return loop.runUntil(
        [&] {
          if (view.synced() && tagger.passes() > 0 && tagger.idle())
            ++quietRounds;
          else
            quietRounds = 0;
          return quietRounds >= 6;
        },
        Duration(limitMs));
  }
  bool runUntil(const std::function<bool()>& done, int limitMs = 60000) {
    return loop.runUntil(done, Duration(limitMs));
  }

  SystemClock clock;
  RealSleeper sleeper;
  StaticCredentials credentials;
  CurlImds imds;
  CurlEc2Client ec2;
  EventLoop loop;
  HttpClient http{loop};
  CurlKubeClient kube;
  WorkerThread worker;
  AnnotationStateStore store;
  Tagger tagger;
  NodeView view;
};

class TaggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& stack = TestStack::get();
    admin_ = std::make_unique<CurlKubeClient>(http_, *loadKubeconfig(stack.adminKubeconfig));
    Ec2ClientConfig c;
    c.region = stack.region;
    c.endpoint =
        stack.motoEndpoint;  // setup talks to moto directly, so the proxy counts only the agent
    setupEc2_ = std::make_unique<CurlEc2Client>(c, creds_, clock_, sleeper_);
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    node_ = "node-" + name;
    ns_ = "tag-" + name;
    Json::Value nsObject;
    nsObject["metadata"]["name"] = ns_;
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{{"/api/v1", "namespaces", false}, "", "", ""}, nsObject, done);
    }));
    Json::Value node;
    node["metadata"]["name"] = node_;
    node["spec"]["providerID"] = "aws:///us-east-1a/" + stack.instanceId;
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::nodes(), "", "", ""}, node, done);
    }));
    resetProxy();
  }

  Result<Json::Value> call(const std::function<void(Callback<Json::Value>)>& start) {
    return await<Json::Value>(loop_, start);
  }

  /// An ENI of its own, attached to the stack's instance (so IMDS knows its IP), plus `extraIps`
  /// secondary addresses. Returns {eni id, [primary ip, secondaries...]}.
  std::pair<std::string, std::vector<std::string>> attachedEni(int extraIps = 0,
                                                               std::vector<Tag> tags = {}) {
    CreateEniRequest request;
    request.subnetId = TestStack::get().subnetC;
    request.tags = std::move(tags);
    auto eni = setupEc2_->createNetworkInterface(request);
    EXPECT_TRUE(eni) << eni.error().describe();
    EXPECT_TRUE(
        setupEc2_->attachNetworkInterface(eni->id, TestStack::get().instanceId, 10 + nextIndex_++));
    if (extraIps > 0) {
      EXPECT_TRUE(setupEc2_->call("AssignPrivateIpAddresses",
                                  {{"NetworkInterfaceId", eni->id},
                                   {"SecondaryPrivateIpAddressCount", std::to_string(extraIps)}}));
    }
    auto described = setupEc2_->describeNetworkInterfaces({eni->id}, {});
    EXPECT_TRUE(described);
    std::vector<std::string> ips{eni->privateIpAddress};
    for (const auto& ip : (*described)[0].privateIpAddresses) {
      if (ip != eni->privateIpAddress) ips.push_back(ip);
    }
    return {eni->id, ips};
  }

  /// A branch ENI (security groups for pods), associated with the instance's trunk: not attached
  /// to the instance, found through the pod's vpc.amazonaws.com/pod-eni annotation. Returns {eni
  /// id, its IP}.
  std::pair<std::string, std::string> branchEni(std::string subnet = "",
                                                std::vector<Tag> tags = {}) {
    auto eni = testing::makeBranchEni(
        *setupEc2_, subnet.empty() ? TestStack::get().subnetC : subnet, std::move(tags));
    return {eni.id, eni.ip};
  }
  static std::map<std::string, std::string> podEni(const std::string& eni, const std::string& ip) {
    return {{kPodEniAnnotation, testing::podEniAnnotation(eni, ip)}};
  }

  TagSet eniTags(const std::string& eniId) {
    auto d = setupEc2_->describeNetworkInterfaces({eniId}, {});
    EXPECT_TRUE(d) << d.error().describe();
    TagSet tags;
    if (d && !d->empty()) {
      for (const auto& t : (*d)[0].tags) tags[t.key] = t.value;
    }
    // The VPC resource controller's own tags on a branch ENI (set by branchEni) are left out.
    std::erase_if(tags, [](const auto& kv) {
      return kv.first.rfind("vpcresources.k8s.aws/", 0) == 0 || kv.first.rfind("eks:", 0) == 0;
    });
    return tags;
  }

  /// A running pod on this test's node, in `ns` (default: the test's namespace).
  void createPod(const std::string& name, const std::string& ip, const std::string& tags,
                 std::map<std::string, std::string> extraAnnotations = {}, std::string ns = "") {
    if (ns.empty()) ns = ns_;
    Json::Value pod;
    pod["metadata"]["name"] = name;
    if (!tags.empty()) pod["metadata"]["annotations"]["eni-tagger.io/tags"] = tags;
    for (const auto& [k, v] : extraAnnotations) pod["metadata"]["annotations"][k] = v;
    pod["spec"]["nodeName"] = node_;
    pod["spec"]["containers"][0]["name"] = "c";
    pod["spec"]["containers"][0]["image"] = "registry.invalid/none";
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::pods(), ns, "", ""}, pod, done);
    }));
    // Play the kubelet: the pod gets its IP and runs.
    Json::Value status;
    status["status"]["phase"] = "Running";
    status["status"]["podIP"] = ip;
    status["status"]["podIPs"][0]["ip"] = ip;
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::pods(), ns, name, "status"}, PatchType::Merge, status,
                    {}, done);
    }));
  }

  void annotate(const std::string& name, const std::string& tags) {
    Json::Value patch;
    patch["metadata"]["annotations"]["eni-tagger.io/tags"] = tags;
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::pods(), ns_, name, ""}, PatchType::Merge, patch, {},
                    done);
    }));
  }

  Pod getPod(const std::string& name, Json::Value* raw = nullptr, const std::string& ns = "") {
    auto r = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::pods(), ns.empty() ? ns_ : ns, name, ""}, done);
    });
    EXPECT_TRUE(r) << r.error().describe();
    if (raw != nullptr && r) *raw = *r;
    return r ? decodePod(*r).value_or(Pod{}) : Pod{};
  }

  /// The pod's eni-tagger.io/tagged condition: {status, reason, message}.
  std::vector<std::string> condition(const std::string& name, const std::string& ns = "") {
    Json::Value raw;
    getPod(name, &raw, ns);
    for (const auto& c : arrayField(objectField(raw, "status"), "conditions")) {
      if (stringField(c, "type") == kTaggedCondition) {
        return {stringField(c, "status"), stringField(c, "reason"), stringField(c, "message")};
      }
    }
    return {"", "", ""};
  }

  std::vector<std::string> eventReasons(const std::string& pod) {
    auto r = await<ObjectList>(loop_, [&](auto done) {
      ListOptions o;
      o.fieldSelector = "involvedObject.name=" + pod;
      admin_->list(ResourceKind::events(), ns_, o, done);
    });
    std::vector<std::string> out;
    if (r) {
      for (const auto& e : r->items) out.push_back(stringField(e, "reason"));
    }
    return out;
  }
  /// The type (Normal, Warning) of the pod's event with `reason`, or "" when it has none.
  std::string eventType(const std::string& pod, const std::string& reason) {
    auto r = await<ObjectList>(loop_, [&](auto done) {
      ListOptions o;
      o.fieldSelector = "involvedObject.name=" + pod;
      admin_->list(ResourceKind::events(), ns_, o, done);
    });
    if (r) {
      for (const auto& e : r->items) {
        if (stringField(e, "reason") == reason) return stringField(e, "type");
      }
    }
    return "";
  }
  /// A namespace of this test's besides ns_.
  std::string otherNamespace() {
    Json::Value nsObject;
    nsObject["metadata"]["name"] = ns_ + "-other";
    EXPECT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{{"/api/v1", "namespaces", false}, "", "", ""}, nsObject, done);
    }));
    return ns_ + "-other";
  }

  void deletePod(const std::string& name) {
    auto r = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                  TestStack::get().adminKubeconfig, "-n", ns_, "delete", "pod",
                                  name, "--grace-period=0", "--force", "--wait=false"});
    ASSERT_EQ(r.status, 0) << r.err;
  }

  EventLoop loop_;
  HttpClient http_{loop_};
  std::unique_ptr<CurlKubeClient> admin_;
  SystemClock clock_;
  RealSleeper sleeper_;
  StaticCredentials creds_;
  std::unique_ptr<CurlEc2Client> setupEc2_;
  std::string node_;
  std::string ns_;
  int nextIndex_ = 0;
};

inline const TagSet kPlatform{{"Team", "Platform"}, {"CostCenter", "1234"}};
inline TagSet withHash(TagSet t) {
  t[kHashTagKey] = tagHash(t);
  return t;
}

/// Expects the pod Synced with `tags` recorded as last applied, and the ENI carrying exactly
/// `tags` plus their hash (and `foreign`, tags that are not the agent's).
#define EXPECT_SYNCED(pod, eni, tags, foreign)                                    \
  do {                                                                            \
    auto p_ = getPod(pod);                                                        \
    EXPECT_EQ(p_.meta.annotations[kLastAppliedTagsAnnotation], tagsToJson(tags)); \
    EXPECT_EQ(p_.meta.annotations[kLastAppliedHashAnnotation], tagHash(tags));    \
    EXPECT_EQ(condition(pod)[0], "True");                                         \
    EXPECT_EQ(condition(pod)[1], "Synced");                                       \
    TagSet want_ = withHash(tags);                                                \
    for (const auto& [k_, v_] : TagSet(foreign)) want_[k_] = v_;                  \
    EXPECT_EQ(eniTags(eni), want_);                                               \
  } while (0)

}  // namespace eni::tagger_it
