// The typed Kubernetes writers against the real kube-apiserver, as the agent: a ServiceAccount
// with the agent's ClusterRole, its token bound to a pod on node A, under
// daemonset/admission-policy.yaml. What the API server stores is read back as the cluster admin.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "agent/base/event_loop.h"
#include "agent/base/json.h"
#include "agent/base/strings.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/event_recorder.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/nodeeni_status_writer.h"
#include "agent/kube/objects.h"
#include "agent/kube/pod_condition_writer.h"
#include "agent/state/annotation_state_store.h"
#include "tests/support/admission_policy.h"
#include "tests/support/eventually.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::await;
using testing::PolicedServiceAccount;
using testing::TestStack;

constexpr const char* kOldFinalizer = "eni-tagger.io/finalizer";
constexpr const char* kNodeEniFinalizer = "nodeeni.networking.k8s.aws/finalizer";

class KubeWritersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = lower(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ns_ = "kw-" + test.substr(0, 30);
    nodeA_ = ns_ + "-a";
    nodeB_ = ns_ + "-b";
    auto adminConfig = loadKubeconfig(TestStack::get().adminKubeconfig);
    ASSERT_TRUE(adminConfig) << adminConfig.error().message;
    admin_ = std::make_unique<CurlKubeClient>(http_, *adminConfig);
    Json::Value ns;
    ns["metadata"]["name"] = ns_;
    ASSERT_TRUE(create(ResourceKind{"/api/v1", "namespaces", false}, "", ns));
    for (const auto& node : {nodeA_, nodeB_}) {
      Json::Value object;
      object["metadata"]["name"] = node;
      ASSERT_TRUE(create(ResourceKind::nodes(), "", object));
    }
    auto sa = PolicedServiceAccount::create(ns_, "agent");
    ASSERT_TRUE(sa) << sa.error().message;
    sa_ = std::move(*sa);
    ASSERT_TRUE(createPod("agent", nodeA_, "agent", {}));
    auto token = sa_->tokenBoundTo("agent");
    ASSERT_TRUE(token) << token.error().message;
    auto agentConfig = PolicedServiceAccount::configWithToken(*token);
    ASSERT_TRUE(agentConfig) << agentConfig.error().message;
    agent_ = std::make_unique<CurlKubeClient>(http_, *agentConfig);
    waitUntilEnforced();
  }

  void TearDown() override {
    sa_.reset();
    for (const auto& node : {nodeA_, nodeB_}) kubectl({"delete", "node", node, "--wait=false"});
  }

  Result<Json::Value> create(const ResourceKind& kind, const std::string& ns,
                             const Json::Value& object) {
    return await<Json::Value>(loop_, [&](auto done) {
      admin_->create(ObjectRef{kind, ns, "", ""}, object, done);
    });
  }
  Result<Json::Value> get(const ObjectRef& ref) {
    return await<Json::Value>(loop_, [&](auto done) { admin_->get(ref, done); });
  }
  Result<Json::Value> createPod(const std::string& name, const std::string& node,
                                const std::string& serviceAccount,
                                const std::vector<std::string>& finalizers) {
    Json::Value pod;
    pod["metadata"]["name"] = name;
    for (const auto& f : finalizers) pod["metadata"]["finalizers"].append(f);
    pod["spec"]["nodeName"] = node;
    if (!serviceAccount.empty()) pod["spec"]["serviceAccountName"] = serviceAccount;
    pod["spec"]["containers"][0]["name"] = "c";
    pod["spec"]["containers"][0]["image"] = "registry.invalid/none";
    return create(ResourceKind::pods(), ns_, pod);
  }
  Pod readPod(const std::string& name) {
    auto object = get(ObjectRef{ResourceKind::pods(), ns_, name, ""});
    EXPECT_TRUE(object) << object.error().describe();
    auto pod = object ? decodePod(*object) : Result<Pod>(fail(object.error()));
    EXPECT_TRUE(pod);
    return pod ? *pod : Pod{};
  }
  void kubectl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {TestStack::get().kubectl, "--kubeconfig",
                                     TestStack::get().adminKubeconfig};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::runProcess(argv);
    EXPECT_EQ(r.status, 0) << r.err;
  }
  /// The policy is enforced once a pod on node B is refused to the agent.
  void waitUntilEnforced() {
    ASSERT_TRUE(createPod("probe-b", nodeB_, "", {}));
    ObjectMeta probe;
    probe.ns = ns_;
    probe.name = "probe-b";
    PodConditionWriter writer(*agent_, clock_);
    ASSERT_TRUE(testing::eventually(
        [&] {
          auto r = await<void>(loop_, [&](auto done) { writer.clearLastApplied(probe, done); });
          return !r && r.error().httpStatus == 403;
        },
        Duration(90000), Duration(250)))
        << "the admission policy " << sa_->objectName() << " was never enforced";
  }
  template <class Writer>
  void drain(const Writer& writer) {
    ASSERT_TRUE(loop_.runUntil([&] { return writer.inFlight() == 0; }, Duration(30000)));
  }

  EventLoop loop_;
  HttpClient http_{loop_};
  SystemClock clock_;
  std::unique_ptr<CurlKubeClient> admin_;
  std::unique_ptr<CurlKubeClient> agent_;
  std::unique_ptr<PolicedServiceAccount> sa_;
  std::string ns_;
  std::string nodeA_;
  std::string nodeB_;
};

TEST_F(KubeWritersTest, ThePodWritesPassTheAdmissionPolicy) {
  ASSERT_TRUE(createPod("work-a", nodeA_, "", {}));
  PodConditionWriter writer(*agent_, clock_);
  ObjectMeta meta = readPod("work-a").meta;
  const PodCondition failed{kTaggedConditionType, "False", "TaggingFailed", "refused", ""};
  auto set = await<void>(loop_, [&](auto d) { writer.setCondition(meta, failed, nullptr, d); });
  ASSERT_TRUE(set) << set.error().describe();
  Pod pod = readPod("work-a");
  const PodCondition* shown = pod.condition(kTaggedConditionType);
  ASSERT_NE(shown, nullptr);
  EXPECT_EQ(shown->reason, "TaggingFailed");
  ASSERT_FALSE(shown->lastTransitionTime.empty());
  const PodCondition first = *shown;

  // The same status with another reason keeps the transition time the server holds.
  const PodCondition lookup{kTaggedConditionType, "False", "ENILookupFailed", "no ENI", ""};
  auto again = await<void>(loop_, [&](auto d) { writer.setCondition(meta, lookup, &first, d); });
  ASSERT_TRUE(again) << again.error().describe();
  pod = readPod("work-a");
  ASSERT_NE(pod.condition(kTaggedConditionType), nullptr);
  EXPECT_EQ(pod.condition(kTaggedConditionType)->reason, "ENILookupFailed");
  EXPECT_EQ(pod.condition(kTaggedConditionType)->lastTransitionTime, first.lastTransitionTime);

  // The last-applied annotations alone, then with the condition: each one pods/status patch,
  // which the API server applies to the metadata as well, and which leaves the rest as it was.
  Json::Value other;
  other["metadata"]["annotations"]["example.com/keep"] = "yes";
  other["status"]["conditions"][0]["type"] = "example.com/ready";
  other["status"]["conditions"][0]["status"] = "True";
  ASSERT_TRUE(await<Json::Value>(loop_, [&](auto d) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns_, "work-a", "status"}, PatchType::Strategic,
                  other, PatchOptions{}, d);
  }));
  auto recorded = await<void>(loop_, [&](auto d) {
    writer.recordLastApplied(meta, R"({"Team":"A"})", "0123abcd", nullptr, nullptr, d);
  });
  ASSERT_TRUE(recorded) << recorded.error().describe();
  EXPECT_EQ(readPod("work-a").meta.annotations[kLastAppliedHashKey], "0123abcd");
  const PodCondition synced{kTaggedConditionType, "True", "Synced", "tagged", ""};
  auto both = await<void>(loop_, [&](auto d) {
    writer.recordLastApplied(meta, R"({"Team":"B"})", "4567cdef", &synced, &first, d);
  });
  ASSERT_TRUE(both) << both.error().describe();
  pod = readPod("work-a");
  EXPECT_EQ(pod.meta.annotations[kLastAppliedTagsKey], R"({"Team":"B"})");
  EXPECT_EQ(pod.meta.annotations[kLastAppliedHashKey], "4567cdef");
  EXPECT_EQ(pod.meta.annotations["example.com/keep"], "yes");
  ASSERT_NE(pod.condition(kTaggedConditionType), nullptr);
  EXPECT_EQ(pod.condition(kTaggedConditionType)->reason, "Synced");
  ASSERT_NE(pod.condition("example.com/ready"), nullptr);
  EXPECT_EQ(pod.condition("example.com/ready")->status, "True");
  auto cleared = await<void>(loop_, [&](auto d) { writer.clearLastApplied(meta, d); });
  ASSERT_TRUE(cleared) << cleared.error().describe();
  EXPECT_EQ(readPod("work-a").meta.annotations.count(kLastAppliedTagsKey), 0u);
}

TEST_F(KubeWritersTest, TheOldTaggersFinalizerIsRemovedConditionally) {
  ASSERT_TRUE(createPod("leaving", nodeA_, "", {kOldFinalizer, "example.com/keep"}));
  kubectl({"-n", ns_, "delete", "pod", "leaving", "--wait=false"});
  ObjectMeta meta = readPod("leaving").meta;
  ASSERT_TRUE(meta.deleting);
  PodConditionWriter writer(*agent_, clock_);

  ObjectMeta stale = meta;
  stale.resourceVersion = "1";
  auto conflict =
      await<void>(loop_, [&](auto d) { writer.removeFinalizer(stale, kOldFinalizer, d); });
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, ErrorCode::Conflict) << conflict.error().describe();

  auto removed =
      await<void>(loop_, [&](auto d) { writer.removeFinalizer(meta, kOldFinalizer, d); });
  ASSERT_TRUE(removed) << removed.error().describe();
  EXPECT_EQ(readPod("leaving").meta.finalizers, std::vector<std::string>{"example.com/keep"});
  kubectl({"-n", ns_, "patch", "pod", "leaving", "--type=merge", "-p",
           R"({"metadata":{"finalizers":null}})"});
}

TEST_F(KubeWritersTest, RepeatedEventsAreOneEventOnTheServer) {
  ASSERT_TRUE(createPod("work-a", nodeA_, "", {}));
  const Pod pod = readPod("work-a");
  EventRecorderOptions options;
  options.nodeName = nodeA_;
  EventRecorder recorder(*agent_, clock_, options);
  for (int i = 0; i < 3; ++i) {
    recorder.record(ObjectReference::pod(pod.meta), EventType::Warning, "TaggingFailed", "refused");
    drain(recorder);
  }
  EXPECT_EQ(recorder.stats().created, 1u);
  EXPECT_EQ(recorder.stats().updated, 2u);
  EXPECT_EQ(recorder.stats().failed, 0u);
  auto events = await<ObjectList>(loop_, [&](auto done) {
    ListOptions o;
    o.fieldSelector = "involvedObject.name=work-a";
    admin_->list(ResourceKind::events(), ns_, o, done);
  });
  ASSERT_TRUE(events) << events.error().describe();
  ASSERT_EQ(events->items.size(), 1u);
  const Json::Value& e = events->items[0];
  EXPECT_EQ(intField(e, "count"), 3);
  EXPECT_EQ(stringField(e, "reportingComponent"), "eni-agent");
  EXPECT_EQ(stringField(e, "reportingInstance"), nodeA_);
  EXPECT_EQ(stringField(objectField(e, "source"), "host"), nodeA_);
  EXPECT_EQ(stringField(objectField(e, "involvedObject"), "uid"), pod.meta.uid);
}

TEST_F(KubeWritersTest, NodeEniStatusFinalizerAndPrune) {
  const std::string name = ns_ + "-neni";
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = name;
  neni["metadata"]["labels"]["team"] = "net";
  neni["spec"]["subnetID"] = "subnet-1";
  ASSERT_TRUE(create(ResourceKind::nodeEnis(), "", neni));
  NodeEniStatusWriter writerA(*agent_, clock_, nodeA_);
  NodeEniStatusWriter writerB(*agent_, clock_, nodeB_);
  NodeEniAttachment a;
  a.instanceId = "i-a";
  a.eniId = "eni-a";
  a.attachmentId = "attach-a";
  a.subnetId = "subnet-1";
  a.deviceIndex = 1;
  a.status = "attached";
  NodeEniAttachment b;
  b.deviceIndex = 1;
  b.status = "failed";
  b.message = "no subnet";
  Result<NodeEni> answer = fail(ErrorCode::Internal, "not answered");
  ASSERT_TRUE(writerA.applyEntries(name, {a}, [&](Result<NodeEni> r) { answer = std::move(r); }));
  drain(writerA);
  ASSERT_TRUE(answer) << answer.error().describe();
  ASSERT_TRUE(writerB.applyEntries(name, {b}, [&](Result<NodeEni> r) { answer = std::move(r); }));
  drain(writerB);
  ASSERT_TRUE(answer) << answer.error().describe();
  ASSERT_EQ(answer->attachments.size(), 2u) << "each node applies its own entries";

  auto withFinalizer = await<NodeEni>(
      loop_, [&](auto d) { writerA.setFinalizer(*answer, kNodeEniFinalizer, true, d); });
  ASSERT_TRUE(withFinalizer) << withFinalizer.error().describe();
  auto stored = get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""});
  ASSERT_TRUE(stored);
  auto read = decodeNodeEni(*stored);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->meta.finalizers, std::vector<std::string>{kNodeEniFinalizer});
  EXPECT_EQ(read->meta.labels["team"], "net") << "the update kept what it does not model";
  EXPECT_EQ(read->attachments.size(), 2u);

  // Node B's Node is deleted: its entries are pruned; node A's stay.
  auto pruned = await<NodeEni>(loop_, [&](auto d) { writerA.pruneNode(*read, nodeB_, d); });
  ASSERT_TRUE(pruned) << pruned.error().describe();
  ASSERT_EQ(pruned->attachments.size(), 1u);
  EXPECT_EQ(pruned->attachments[0].nodeId, nodeA_);
  EXPECT_EQ(pruned->attachments[0].eniId, "eni-a");

  kubectl({"delete", "nodeeni", name, "--wait=false"});
  stored = get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""});
  ASSERT_TRUE(stored);
  read = decodeNodeEni(*stored);
  ASSERT_TRUE(read && read->meta.deleting);
  auto released = await<NodeEni>(
      loop_, [&](auto d) { writerA.setFinalizer(*read, kNodeEniFinalizer, false, d); });
  ASSERT_TRUE(released) << released.error().describe();
  auto gone = get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::NotFound);
}

// A node of many ENIs, as the agent writes its state under the policy: the whole state, then only
// what a pass changed in eni-agent.io/state-pending (the API server keeps the state as it was), and
// at a clean stop the whole state again with the overlay removed in the same merge patch.
TEST_F(KubeWritersTest, ALargeNodeStateGoesInTwoKeysAndBackToOne) {
  AnnotationStateStore::Options options{nodeA_, Duration(500)};
  options.compactAfter = Duration(60000);  // this test stops it itself
  AnnotationStateStore store(*agent_, loop_, options);
  auto node = [&] {
    auto object = get(ObjectRef{ResourceKind::nodes(), "", nodeA_, ""});
    EXPECT_TRUE(object) << object.error().describe();
    return object ? *object : Json::Value();
  };
  auto annotation = [&](const char* key) {
    return node()["metadata"]["annotations"].get(key, "").asString();
  };
  auto writeAhead = [&] {
    return await<bool>(loop_,
                       [&](auto done) { store.writeAhead([done](bool stored) { done(stored); }); });
  };
  store.onNode(ChangeType::Added, node());
  store.update([](NodeState& s) {
    s.instanceId = "i-0123456789abcdef0";
    for (int i = 0; i < 60; ++i) {
      EniRecord e;
      e.mac = "02:00:00:00:02:" + std::to_string(10 + i);
      e.tags = {{"Team", "team-" + std::to_string(i)}, {"CostCenter", "cc-1234"}};
      e.hash = "0123456789abcdef";
      e.pods["default/pod-" + std::to_string(i)] =
          PodRecord{"uid-" + std::to_string(i), "10.0.0.1"};
      s.enis["eni-" + std::to_string(1000 + i)] = e;
    }
  });
  auto first = writeAhead();
  ASSERT_TRUE(first && *first) << "the whole state";
  const std::string whole = annotation(kNodeStateAnnotation);
  ASSERT_GE(whole.size(), options.overlayFrom);
  EXPECT_EQ(annotation(kNodeStatePendingAnnotation), "");

  store.update([](NodeState& s) {
    s.enis["eni-1007"].pendingHash = "fedcba9876543210";
    s.enis["eni-1007"].pendingKeys = {"Team"};
    s.enis.erase("eni-1008");
  });
  auto second = writeAhead();
  ASSERT_TRUE(second && *second) << "the overlay, under the policy";
  EXPECT_EQ(annotation(kNodeStateAnnotation), whole) << "the state itself is not sent again";
  const std::string overlay = annotation(kNodeStatePendingAnnotation);
  EXPECT_LT(overlay.size() * 10, whole.size()) << overlay;
  auto read = decodeNodeState(whole, overlay);
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(*read, store.current());

  auto stopped = await<bool>(loop_, [&](auto done) { store.compactNow([done] { done(true); }); });
  ASSERT_TRUE(stopped);
  EXPECT_FALSE(node()["metadata"]["annotations"].isMember(kNodeStatePendingAnnotation))
      << "removed in the same patch";
  auto compacted = decodeNodeState(annotation(kNodeStateAnnotation));
  ASSERT_TRUE(compacted) << compacted.error().message;
  EXPECT_EQ(*compacted, store.current());
}

}  // namespace
}  // namespace eni
