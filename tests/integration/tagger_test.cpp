// The tagger against the real stack: kube-apiserver (as the agent's ServiceAccount), moto through
// the fault proxy (which counts every EC2 call), and the IMDS emulator. The agent runs in-process
// so that its counters and node state can be read; a restart is a new agent on the same node.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "agent/base/event_loop.h"
#include "agent/base/executor.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_view.h"
#include "agent/tagger/tagger.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "tests/support/static_credentials.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::await;
using testing::TestStack;

using testing::StaticCredentials;

EnvLookup imdsEnv() {
  return [](const std::string& n) -> std::optional<std::string> {
    if (n == "AWS_EC2_METADATA_SERVICE_ENDPOINT") return TestStack::get().imdsEndpoint;
    return std::nullopt;
  };
}

Json::Value proxyStats() {
  return *parseJson(
      TestStack::get().controlHttp("GET", TestStack::get().ec2ProxyEndpoint + "/_proxy/stats"));
}
std::uint64_t calls(const std::string& action) {
  return proxyStats()["requests"].get(action, 0).asUInt64();
}
std::uint64_t allCalls() {
  std::uint64_t n = 0;
  const Json::Value requests = proxyStats()["requests"];
  for (const auto& name : requests.getMemberNames()) n += requests[name].asUInt64();
  return n;
}
void resetProxy() {
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
}
std::uint64_t faults(const std::string& action) {
  return proxyStats()["faults"].get(action, 0).asUInt64();
}
void imdsControl(const std::string& hook, const std::string& body) {
  TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/" + hook, body);
}
/// Clears the IMDS emulator's stale keys, even when the test fails.
struct ImdsModesReset {
  ~ImdsModesReset() { imdsControl("reset", ""); }
};

/// One eni-agent (tagger part) for `node`, in-process, on its own loop.
struct Agent {
  explicit Agent(const std::string& node, TaggerOptions extra = {})
      : imds(imdsConfigFromEnv(imdsEnv()), clock, sleeper),
        ec2(makeEc2Config(), credentials, clock, sleeper),
        kube(http, *loadKubeconfig(TestStack::get().agentKubeconfig)),
        worker(loop),
        tagger(kube, ec2, imds, loop, worker, clock, withNode(std::move(extra), node)),
        view(kube, loop, node,
             {[this](ChangeType t, const Json::Value& o) { tagger.onPod(t, o); },
              [this](ChangeType t, const Json::Value& o) { tagger.onNode(t, o); }, nullptr,
              [this] { tagger.start(); }},
             false) {
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
    o.stateDebounce = Duration(50);
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

  /// A branch ENI (security groups for pods): not attached to the instance, found through the
  /// pod's vpc.amazonaws.com/pod-eni annotation. Returns {eni id, its IP}.
  std::pair<std::string, std::string> branchEni(std::string subnet = "") {
    CreateEniRequest request;
    request.subnetId = subnet.empty() ? TestStack::get().subnetC : subnet;
    auto eni = setupEc2_->createNetworkInterface(request);
    EXPECT_TRUE(eni) << eni.error().describe();
    return {eni->id, eni->privateIpAddress};
  }
  static std::map<std::string, std::string> podEni(const std::string& eni, const std::string& ip) {
    return {{kPodEniAnnotation,
             R"([{"eniId":")" + eni + R"(","privateIp":")" + ip + R"(","vlanId":1}])"}};
  }

  TagSet eniTags(const std::string& eniId) {
    auto d = setupEc2_->describeNetworkInterfaces({eniId}, {});
    EXPECT_TRUE(d) << d.error().describe();
    TagSet tags;
    if (d && !d->empty()) {
      for (const auto& t : (*d)[0].tags) tags[t.key] = t.value;
    }
    return tags;
  }

  void createPod(const std::string& name, const std::string& ip, const std::string& tags,
                 std::map<std::string, std::string> extraAnnotations = {}) {
    Json::Value pod;
    pod["metadata"]["name"] = name;
    if (!tags.empty()) pod["metadata"]["annotations"]["eni-tagger.io/tags"] = tags;
    for (const auto& [k, v] : extraAnnotations) pod["metadata"]["annotations"][k] = v;
    pod["spec"]["nodeName"] = node_;
    pod["spec"]["containers"][0]["name"] = "c";
    pod["spec"]["containers"][0]["image"] = "registry.invalid/none";
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::pods(), ns_, "", ""}, pod, done);
    }));
    // Play the kubelet: the pod gets its IP and runs.
    Json::Value status;
    status["status"]["phase"] = "Running";
    status["status"]["podIP"] = ip;
    status["status"]["podIPs"][0]["ip"] = ip;
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::pods(), ns_, name, "status"}, PatchType::Merge, status,
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

  Pod getPod(const std::string& name, Json::Value* raw = nullptr) {
    auto r = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::pods(), ns_, name, ""}, done);
    });
    EXPECT_TRUE(r) << r.error().describe();
    if (raw != nullptr && r) *raw = *r;
    return r ? decodePod(*r).value_or(Pod{}) : Pod{};
  }

  /// The pod's eni-tagger.io/tagged condition: {status, reason, message}.
  std::vector<std::string> condition(const std::string& name) {
    Json::Value raw;
    getPod(name, &raw);
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

const TagSet kPlatform{{"Team", "Platform"}, {"CostCenter", "1234"}};
TagSet withHash(TagSet t) {
  t[kHashTagKey] = tagHash(t);
  return t;
}

// Seed scenarios 1-8 (seeds/eni-tagger-scenarios.md), one test each: the ENI's tags in moto, the
// pod's annotations and condition, and the exact EC2 calls counted at the fault proxy.

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

TEST_F(TaggerTest, Scenario1NoAnnotationIsSkippedAtZeroCost) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("plain", ips[0], "");
  annotate("plain", "");  // an empty value is "no tags", also free
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(allCalls(), 0u);
  EXPECT_TRUE(eniTags(eni).empty());
  auto pod = getPod("plain");
  EXPECT_EQ(pod.meta.annotations.count(kLastAppliedHashAnnotation), 0u);
  EXPECT_EQ(condition("plain")[0], "");
}

TEST_F(TaggerTest, Scenario2FirstAnnotationCostsNoDescribeAndOneCreateTags) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();  // the cold start's one Describe of the instance's ENIs is behind us
  std::vector<std::string> applied;  // bench/run reads the latency off this line
  logging::setSink([&](const std::string& line) {
    if (line.find("tags applied") != std::string::npos) applied.push_back(line);
  });
  createPod("web", ips[0], R"({"Team":"Platform","CostCenter":"1234"})");
  ASSERT_TRUE(agent.settle());
  logging::setSink(nullptr);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_NE(applied[0].find("\"latency_ms\":"), std::string::npos) << applied[0];
  EXPECT_SYNCED("web", eni, kPlatform, TagSet{});
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 0u);
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(allCalls(), 1u);
  EXPECT_EQ(condition("web")[2], "the ENI carries the pod's tags");
  auto reasons = eventReasons("web");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "TagsApplied"), reasons.end());
  EXPECT_EQ(agent.tagger.counters().resolveSource(ResolveSource::Imds), 1u);
  EXPECT_EQ(agent.tagger.counters().syncResult(SyncReason::Synced), 1u);
  EXPECT_EQ(agent.tagger.counters().latencies().size(), 1u);
}

class TaggerScenarioTest : public TaggerTest {
 protected:
  /// A pod already synced with `initial`; the proxy's counts start after it.
  void start(const std::string& initial, const TagSet& initialTags) {
    auto [id, ips] = attachedEni();
    eni_ = id;
    agent_ = std::make_unique<Agent>(node_);
    createPod("web", ips[0], initial);
    ASSERT_TRUE(agent_->settle());
    EXPECT_SYNCED("web", eni_, initialTags, TagSet{});
    resetProxy();
  }
  void change(const std::string& value) {
    annotate("web", value);
    ASSERT_TRUE(agent_->settle());
  }
  std::string eni_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(TaggerScenarioTest, Scenario3SameKeyDifferentValueIsOneCreateTags) {
  start(R"({"Team":"Platform","Cost":"1000"})", {{"Team", "Platform"}, {"Cost", "1000"}});
  change(R"({"Team":"Dev","Cost":"1000"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Dev"}, {"Cost", "1000"}}), TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(allCalls(), 1u);
}

TEST_F(TaggerScenarioTest, Scenario4NewKeyIsOneCreateTags) {
  start(R"({"Team":"Platform"})", {{"Team", "Platform"}});
  change(R"({"Team":"Platform","Cost":"1000"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Platform"}, {"Cost", "1000"}}), TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(allCalls(), 1u);
}

TEST_F(TaggerScenarioTest, Scenario5RemovedKeyIsOneDeleteTagsAndTheNewHash) {
  start(R"({"Team":"Platform","Cost":"1000"})", {{"Team", "Platform"}, {"Cost", "1000"}});
  change(R"({"Team":"Platform"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Platform"}}), TagSet{});
  EXPECT_EQ(calls("DeleteTags"), 1u);
  EXPECT_EQ(calls("CreateTags"), 1u) << "the hash tag changes with the set";
  EXPECT_EQ(allCalls(), 2u);
}

TEST_F(TaggerScenarioTest, Scenario6TheSameAnnotationAHundredTimesIsFree) {
  start(R"({"Team":"Platform","Cost":"1000"})", {{"Team", "Platform"}, {"Cost", "1000"}});
  for (int i = 0; i < 100; ++i) annotate("web", R"({"Team":"Platform","Cost":"1000"})");
  // A change on a second pod is the barrier: once it is applied, the 100 writes were seen.
  auto [eni2, ips2] = attachedEni();
  createPod("barrier", ips2[0], "Barrier=yes");
  ASSERT_TRUE(agent_->settle());
  EXPECT_SYNCED("barrier", eni2, (TagSet{{"Barrier", "yes"}}), TagSet{});
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Platform"}, {"Cost", "1000"}}), TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u) << "only the barrier pod's tags";
  EXPECT_EQ(allCalls(), 1u);
}

TEST_F(TaggerScenarioTest, Scenario7ChangesAndRemovalsAreOneCreateTagsAndOneDeleteTags) {
  start(R"({"Team":"Platform","Cost":"1000","Env":"Prod"})",
        {{"Team", "Platform"}, {"Cost", "1000"}, {"Env", "Prod"}});
  change(R"({"Team":"Dev","Env":"Dev","Owner":"Alice"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Dev"}, {"Env", "Dev"}, {"Owner", "Alice"}}),
                TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(calls("DeleteTags"), 1u);
  EXPECT_EQ(allCalls(), 2u);
}

TEST_F(TaggerTest, Scenario8ForeignHashIsAConflictWithAnEventAndNoWrite) {
  auto [eni, ips] = attachedEni(0, {{kHashTagKey, "0123456789abcdef"}, {"Team", "Other"}});
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("web", ips[0], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  auto c = condition("web");
  EXPECT_EQ(c[0], "False");
  EXPECT_EQ(c[1], "Conflict");
  EXPECT_NE(c[2].find("0123456789abcdef"), std::string::npos) << c[2];
  EXPECT_NE(c[2].find("--allow-shared-eni-tagging"), std::string::npos) << c[2];
  auto reasons = eventReasons("web");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "HashConflict"), reasons.end());
  EXPECT_EQ(allCalls(), 0u) << "no write, and no Describe: the cold start already saw the ENI";
  EXPECT_EQ(eniTags(eni), (TagSet{{kHashTagKey, "0123456789abcdef"}, {"Team", "Other"}}));
  EXPECT_EQ(getPod("web").meta.annotations.count(kLastAppliedHashAnnotation), 0u);
}

// CreateTags answered 200 with <Foo/>, or with a load balancer's HTML page: that is not EC2
// saying yes. The pod gets TaggingFailed, never Synced on it, and once the fault is spent the tags
// land and the pod is Synced.
TEST_F(TaggerTest, CreateTagsAnsweredWithFooOrAnHtmlPageIsNeverSynced) {
  for (const std::string fault : {"bogus", "html200"}) {
    SCOPED_TRACE(fault);
    auto [eni, ips] = attachedEni();
    Agent agent(node_);
    ASSERT_TRUE(agent.settle());
    resetProxy();
    // Every attempt of the first call (the client makes 4) is answered so.
    TestStack::get().controlHttp(
        "POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/rules",
        R"([{"action":"CreateTags","fault":")" + fault + R"(","count":4}])");
    const std::string pod = "web-" + fault;
    createPod(pod, ips[0], R"({"Team":"Platform","CostCenter":"1234"})");
    ASSERT_TRUE(agent.runUntil([&] {
      return agent.tagger.counters().syncResult(SyncReason::TaggingFailed) >= 1;
    })) << "the lie must fail the write";
    EXPECT_TRUE(eniTags(eni).empty());
    EXPECT_EQ(getPod(pod).meta.annotations.count(kLastAppliedHashAnnotation), 0u)
        << "nothing recorded as applied";
    EXPECT_EQ(faults("CreateTags"), 4u);
    ASSERT_TRUE(agent.settle());
    EXPECT_SYNCED(pod, eni, kPlatform, TagSet{});
    EXPECT_EQ(calls("CreateTags"), 5u) << "the four lies, then the write that landed";
  }
}

// One stale IMDS key (listed, answering 404) on one interface sinks at most that interface. A
// stale ipv4-prefix reads as none: pods on every interface resolve through IMDS, with no
// DescribeNetworkInterfaces. A stale local-ipv4s skips that interface for the read: its pod goes
// to EC2 (one Describe), the pod on the other interface stays on IMDS.
TEST_F(TaggerTest, AStaleImdsKeySinksAtMostItsOwnInterface) {
  ImdsModesReset reset;
  auto macOf = [&](const std::string& eni) {
    auto d = setupEc2_->describeNetworkInterfaces({eni}, {});
    return d && !d->empty() ? d->front().macAddress : std::string();
  };
  const std::string tags = R"({"Team":"Platform","CostCenter":"1234"})";
  for (const std::string key : {"ipv4-prefix", "local-ipv4s"}) {
    SCOPED_TRACE(key);
    auto [healthy, healthyIps] = attachedEni();
    auto [stale, staleIps] = attachedEni();
    imdsControl("stale", R"([{"mac":")" + macOf(stale) + R"(","key":")" + key + R"("}])");
    Agent agent(node_);
    ASSERT_TRUE(agent.settle());
    resetProxy();
    createPod("healthy-" + key, healthyIps[0], tags);
    createPod("stale-" + key, staleIps[0], tags);
    ASSERT_TRUE(agent.settle());
    EXPECT_SYNCED("healthy-" + key, healthy, kPlatform, TagSet{});
    EXPECT_SYNCED("stale-" + key, stale, kPlatform, TagSet{});
    const auto& counters = agent.tagger.counters();
    if (key == "ipv4-prefix") {
      EXPECT_EQ(calls("DescribeNetworkInterfaces"), 0u);
      EXPECT_EQ(counters.resolveSource(ResolveSource::Imds), 2u);
    } else {
      EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "for the skipped interface's pod only";
      EXPECT_EQ(counters.resolveSource(ResolveSource::Imds), 1u);
      EXPECT_EQ(counters.resolveSource(ResolveSource::Ec2), 1u);
    }
  }
}

TEST_F(TaggerTest, RestartWithSyncedPodsCostsNoEc2Call) {
  std::vector<std::string> enis;
  {
    Agent agent(node_);
    for (int i = 0; i < 50; ++i) {
      auto [eni, ip] = branchEni();
      enis.push_back(eni);
      createPod("p" + std::to_string(i), ip, "Team=Platform,Index=" + std::to_string(i),
                podEni(eni, ip));
    }
    ASSERT_TRUE(agent.settle(120000));
    ASSERT_EQ(agent.tagger.state().enis.size(), 50u);
    agent.runUntil([] { return false; }, 300);  // let the debounced node-state write land
  }
  resetProxy();
  Agent restarted(node_);
  ASSERT_TRUE(restarted.settle());
  EXPECT_EQ(allCalls(), 0u) << "the node state is the warm cache: no Describe, no write";
  EXPECT_EQ(restarted.tagger.counters().resolveSource(ResolveSource::Cache), 50u);
  EXPECT_EQ(restarted.tagger.counters().resolveSource(ResolveSource::PodAnnotation), 0u);
  for (const auto& eni : {enis.front(), enis.back()}) EXPECT_EQ(eniTags(eni).count("Team"), 1u);
}

TEST_F(TaggerTest, FiftyPodsWithIdenticalTagsShareCreateTags) {
  std::vector<std::pair<std::string, std::string>> enis;
  for (int i = 0; i < 50; ++i) enis.push_back(branchEni());
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  for (int i = 0; i < 50; ++i) {
    createPod("p" + std::to_string(i), enis[i].second, "Team=Platform,CostCenter=1234",
              podEni(enis[i].first, enis[i].second));
  }
  ASSERT_TRUE(agent.settle(120000));
  EXPECT_LE(calls("CreateTags"), 3u);
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 0u);
  EXPECT_EQ(agent.tagger.counters().resolveSource(ResolveSource::PodAnnotation), 50u);
  for (const auto& [eni, ip] : enis) EXPECT_EQ(eniTags(eni), withHash(kPlatform)) << eni;
}

TEST_F(TaggerTest, InvalidAnnotationsCostNothingAndKeepWhatWasApplied) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  createPod("web", ips[0], "Team=Platform,CostCenter=1234");
  ASSERT_TRUE(agent.settle());
  ASSERT_EQ(eniTags(eni), withHash(kPlatform));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "malformed JSON"},
      {R"({"Team":1})", "must be a JSON string"},
      {R"(["a"])", "must be an object"},
      {R"({"a":"1","a":"2"})", "duplicate"},
      {"Team=a,Team=b", "appears twice"},
      {"Team", "is not Key=Value"},
      {"Team=a,,b=c", "empty entry"},
      {"Team=a,", "empty entry"},
      {"=v", "key is empty"},
      {std::string(128, 'k') + "=v", "the limit is 127"},
      {"k=" + std::string(256, 'v'), "the limit is 255"},
      {"Team=a#b", "contains"},
      {"Te!am=x", "contains"},
      {"Team=a*b", "contains"},
      {"Team=semi;c", "contains"},
      {"Team=caf\xc3\xa9", "contains"},
      {"Team=<x>", "contains"},
      {"Team=a\"b", "contains"},
      {"aws:x=y", "reserved prefix aws:"},
      {"AWS:x=y", "reserved prefix aws:"},
      {"kubernetes.io/cluster/c=owned", "reserved prefix kubernetes.io/cluster/"},
      {"eni-tagger.io/hash=x", "agent's own"},
      {std::string(10001, 'a'), "the limit is 10000"},
      {R"({"a":"b"}x)", "malformed JSON"},
      {R"({"a":null})", "must be a JSON string"},
      {R"({"a":{"b":"c"}})", "must be a JSON string"},
      {",", "empty entry"},
      {R"({"":"v"})", "key is empty"},
      {"Team=x|y", "contains"},
      {"Team=x\\y", "contains"},
      {"Team=x%y", "contains"}};
  std::string tooMany;
  for (int i = 0; i < 51; ++i)
    tooMany += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  std::vector<std::pair<std::string, std::string>> all = bad;
  all.emplace_back(tooMany, "51 tags");
  ASSERT_GE(all.size(), 30u);
  resetProxy();
  for (const auto& [value, reason] : all) {
    annotate("web", value);
    ASSERT_TRUE(agent.settle());
    auto c = condition("web");
    EXPECT_EQ(c[0], "False") << value.substr(0, 40);
    EXPECT_EQ(c[1], "InvalidTags") << value.substr(0, 40);
    EXPECT_NE(c[2].find(reason), std::string::npos) << c[2];
  }
  EXPECT_EQ(allCalls(), 0u) << "no AWS call for any invalid annotation";
  EXPECT_EQ(eniTags(eni), withHash(kPlatform)) << "the tags already applied stay";
  auto reasons = eventReasons("web");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "InvalidTags"), reasons.end());
  // Fixing the annotation resumes from the applied state.
  annotate("web", "Team=Platform,CostCenter=1234");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "Synced");
  EXPECT_EQ(allCalls(), 0u) << "back to what is applied: nothing to write";
}

TEST_F(TaggerTest, PodDeletedWhileTheAgentIsDownLosesOnlyItsOwnTags) {
  auto [eni, ips] = attachedEni(0, {{"Owner", "finance"}});
  {
    Agent agent(node_);
    createPod("web", ips[0], "Team=Platform,CostCenter=1234");
    ASSERT_TRUE(agent.settle());
    ASSERT_EQ(eniTags(eni).count("Team"), 1u);
    agent.runUntil([] { return false; }, 300);  // the node-state write lands
  }
  deletePod("web");  // the agent is down
  Agent restarted(node_);
  ASSERT_TRUE(restarted.settle());
  EXPECT_EQ(eniTags(eni), (TagSet{{"Owner", "finance"}}))
      << "owned tags and hash gone, the foreign tag stays";
  EXPECT_EQ(restarted.tagger.state().enis.count(eni), 0u);
}

TEST_F(TaggerTest, SharedEniMergesAgreeingPodsAndFlagsTheDisagreement) {
  auto [eni, ips] = attachedEni(2);
  ASSERT_EQ(ips.size(), 3u);
  Agent agent(node_);
  createPod("a", ips[1], "Team=Platform,App=a");
  createPod("b", ips[2], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("b")[1], "Synced");
  EXPECT_EQ(condition("a")[1], "Synced");
  EXPECT_EQ(eniTags(eni), withHash({{"Team", "Platform"}, {"App", "a"}}));
  annotate("b", "Team=Platform,App=b");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("a")[1], "Conflict");
  EXPECT_EQ(condition("b")[1], "Conflict");
  EXPECT_EQ(eniTags(eni)["App"], "a") << "a disagreeing key keeps its applied value";
}

TEST_F(TaggerTest, DryRunWritesNothingAndSaysSo) {
  auto [eni, ips] = attachedEni();
  TaggerOptions options;
  options.dryRun = true;
  Agent agent(node_, options);
  createPod("web", ips[0], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "DryRun");
  EXPECT_NE(condition("web")[2].find("would send CreateTags"), std::string::npos)
      << condition("web")[2];
  EXPECT_EQ(calls("CreateTags"), 0u);
  EXPECT_TRUE(eniTags(eni).empty());
}

TEST_F(TaggerTest, K8sEniTaggerPodsAreAdoptedWithoutAWrite) {
  auto [eni, ips] =
      attachedEni(0, {{"Team", "Platform"}, {kHashTagKey, tagHash({{"Team", "Platform"}})}});
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("legacy", ips[0], R"({"Team":"Platform"})",
            {{kLastAppliedTagsAnnotation, R"({"Team":"Platform"})"},
             {kLastAppliedHashAnnotation, tagHash({{"Team", "Platform"}})}});
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("legacy")[1], "Synced");
  EXPECT_EQ(allCalls(), 0u);
  EXPECT_EQ(agent.tagger.state().enis.at(eni).tags, (TagSet{{"Team", "Platform"}}));
}

TEST_F(TaggerTest, DriftIsRepairedOnResync) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  createPod("web", ips[0], "Team=Platform,CostCenter=1234");
  ASSERT_TRUE(agent.settle());
  ASSERT_TRUE(setupEc2_->deleteTags({eni}, {{"CostCenter", ""}}));  // someone removes an owned tag
  resetProxy();
  agent.tagger.resync();
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "one Describe for all of the node's ENIs";
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(eniTags(eni), withHash(kPlatform));
}

TEST_F(TaggerTest, SubnetIdsLimitTaggingEvenForBranchEnis) {
  auto [inside, insideIp] = branchEni(TestStack::get().subnetA);
  auto [outside, outsideIp] = branchEni(TestStack::get().subnetC);
  TaggerOptions options;
  options.subnetIds = {TestStack::get().subnetA};
  Agent agent(node_, options);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("in", insideIp, "Team=Platform", podEni(inside, insideIp));
  createPod("out", outsideIp, "Team=Platform", podEni(outside, outsideIp));
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(eniTags(inside), withHash({{"Team", "Platform"}}));
  EXPECT_TRUE(eniTags(outside).empty());
  EXPECT_EQ(condition("out")[0], "") << "a pod outside --subnet-ids is not ours: no condition";
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "one Describe told both ENIs' subnets";
}

TEST_F(TaggerTest, K8sEniTaggerFinalizerIsRemovedAfterCleanup) {
  auto [eni, ips] = attachedEni(0, {{"Owner", "finance"}});
  Agent agent(node_);
  createPod("legacy", ips[0], "Team=Platform");
  Json::Value patch;
  patch["metadata"]["finalizers"][0] = kOldTaggerFinalizer;
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns_, "legacy", ""}, PatchType::Merge, patch, {},
                  done);
  }));
  ASSERT_TRUE(agent.settle());
  ASSERT_EQ(eniTags(eni).count("Team"), 1u);
  deletePod("legacy");  // held by the finalizer until the agent has cleaned up
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = await<Json::Value>(loop_, [&](auto done) {
      admin_->get(ObjectRef{ResourceKind::pods(), ns_, "legacy", ""}, done);
    });
    return !r && r.error().code == ErrorCode::NotFound;
  }));
  EXPECT_EQ(eniTags(eni), (TagSet{{"Owner", "finance"}})) << "cleaned up before the finalizer went";
}

}  // namespace
}  // namespace eni
