// daemonset/admission-policy.yaml on the real kube-apiserver: an agent's token, bound to its pod on
// node A, may write node A's state annotation and the tagger's keys of pods on node A, and nothing
// else. The patches have exactly the shapes the agent sends (agent/tagger/tagger.cpp: writeState,
// writePod, finish).
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
#include "agent/kube/kube_config.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "agent/kube/objects.h"
#include "tests/support/admission_policy.h"
#include "tests/support/eventually.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::await;
using testing::PolicedServiceAccount;
using testing::TestStack;

constexpr const char* kState = "eni-agent.io/state";
constexpr const char* kStatePending = "eni-agent.io/state-pending";
constexpr const char* kLastTags = "eni-tagger.io/last-applied-tags";
constexpr const char* kLastHash = "eni-tagger.io/last-applied-hash";
constexpr const char* kOldFinalizer = "eni-tagger.io/finalizer";

class AdmissionPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string test = lower(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ns_ = "adm-" + test.substr(0, 30);
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
      object["metadata"]["labels"]["eni-agent.io/enabled"] = "true";
      object["metadata"]["annotations"]["example.com/owner"] = "platform";
      ASSERT_TRUE(create(ResourceKind::nodes(), "", object));
    }
    auto sa = PolicedServiceAccount::create(ns_, "agent");
    ASSERT_TRUE(sa) << sa.error().message;
    sa_ = std::move(*sa);
    // The agent's own pod on node A, which its token is bound to, and a workload on each node.
    ASSERT_TRUE(createPod("agent", nodeA_, "agent", {}));
    ASSERT_TRUE(createPod("work-a", nodeA_, "", {}));
    ASSERT_TRUE(createPod("work-b", nodeB_, "", {}));
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

  Result<Json::Value> createPod(const std::string& name, const std::string& node,
                                const std::string& serviceAccount,
                                const std::vector<std::string>& finalizers) {
    Json::Value pod;
    pod["metadata"]["name"] = name;
    pod["metadata"]["labels"]["app"] = name;
    pod["metadata"]["annotations"]["eni-tagger.io/tags"] = R"({"Team":"A"})";
    for (const auto& f : finalizers) pod["metadata"]["finalizers"].append(f);
    pod["spec"]["nodeName"] = node;
    if (!serviceAccount.empty()) pod["spec"]["serviceAccountName"] = serviceAccount;
    pod["spec"]["containers"][0]["name"] = "c";
    pod["spec"]["containers"][0]["image"] = "registry.invalid/none";
    return create(ResourceKind::pods(), ns_, pod);
  }

  Result<Json::Value> patch(KubeApi& as, const ObjectRef& ref, PatchType type,
                            const Json::Value& body) {
    return await<Json::Value>(loop_, [&](auto done) { as.patch(ref, type, body, {}, done); });
  }
  ObjectRef node(const std::string& name) const {
    return ObjectRef{ResourceKind::nodes(), "", name, ""};
  }
  ObjectRef pod(const std::string& name, const std::string& subresource = "") const {
    return ObjectRef{ResourceKind::pods(), ns_, name, subresource};
  }

  /// writeState's patch.
  static Json::Value statePatch(const Json::Value& value) {
    Json::Value p;
    p["metadata"]["annotations"][kState] = value;
    return p;
  }
  /// writePod's patch, or finish's removal with null values.
  static Json::Value lastAppliedPatch(const Json::Value& tags, const Json::Value& hash) {
    Json::Value p;
    p["metadata"]["annotations"][kLastTags] = tags;
    p["metadata"]["annotations"][kLastHash] = hash;
    return p;
  }
  /// writePod's condition patch (strategic merge on pods/status), for any condition type.
  static Json::Value conditionPatch(const std::string& type, const std::string& status) {
    Json::Value c;
    c["type"] = type;
    c["status"] = status;
    c["reason"] = "Synced";
    c["message"] = "the ENI carries the pod's tags";
    c["lastTransitionTime"] = "2026-01-01T00:00:00Z";
    Json::Value p;
    p["status"]["conditions"][0] = c;
    return p;
  }

  void kubectl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {TestStack::get().kubectl, "--kubeconfig",
                                     TestStack::get().adminKubeconfig};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::runProcess(argv);
    EXPECT_EQ(r.status, 0) << r.err;
  }

  /// A new policy is enforced once the API server's informer has it: until another node's state
  /// annotation is refused (a harmless write while it is not).
  void waitUntilEnforced() {
    ASSERT_TRUE(testing::eventually(
        [&] {
          auto r = patch(*agent_, node(nodeB_), PatchType::Merge, statePatch("probe"));
          return !r && r.error().httpStatus == 403;
        },
        Duration(90000), Duration(250)))
        << "the admission policy " << sa_->objectName() << " was never enforced";
    ASSERT_TRUE(admin_);
    // Undo the probes that landed before the policy did.
    ASSERT_TRUE(patch(*admin_, node(nodeB_), PatchType::Merge, statePatch(Json::Value())));
  }

  /// The write was refused by the policy (403 with its message), not by something else.
  static void expectRefused(const Result<Json::Value>& r, const std::string& why) {
    ASSERT_FALSE(r) << "allowed: " << why;
    EXPECT_EQ(r.error().httpStatus, 403) << why << ": " << r.error().describe();
    EXPECT_NE(r.error().message.find("ValidatingAdmissionPolicy"), std::string::npos)
        << why << ": " << r.error().describe();
  }

  EventLoop loop_;
  HttpClient http_{loop_};
  std::unique_ptr<CurlKubeClient> admin_;
  std::unique_ptr<CurlKubeClient> agent_;
  std::unique_ptr<PolicedServiceAccount> sa_;
  std::string ns_;
  std::string nodeA_;
  std::string nodeB_;
};

// NodeENIAttachments, written by the agent's own writer: its node's, yes; another node's (a
// forged spec.nodeName, or moving one of its objects to another node), no; deleting another
// node's (the dead-node prune), yes.
TEST_F(AdmissionPolicyTest, ItsOwnNodesNodeEniAttachmentsOnly) {
  SystemClock clock;
  auto write = [&](NodeEniAttachmentWriter& w, const std::string& nodeEni) {
    NodeEniAttachmentObject o;
    o.nodeEni = nodeEni;
    o.nodeEniUid = "uid-" + nodeEni;
    o.entries.push_back(NodeEniAttachment{"", "", "eni-0adm", "", "", "", 1, 0, "attached", "", "",
                                          false, "", "", ""});
    return await<Json::Value>(loop_, [&](auto done) {
      w.apply(o, [done](Result<void> r) {
        done(r ? Result<Json::Value>(Json::Value()) : fail(r.error()));
      });
    });
  };
  NodeEniAttachmentWriter own(*agent_, clock, nodeA_);
  auto mine = write(own, ns_);
  ASSERT_TRUE(mine) << mine.error().describe();
  NodeEniAttachmentWriter forged(*agent_, clock, nodeB_);
  expectRefused(write(forged, ns_), "another node's NodeENIAttachment");
  Json::Value move;
  move["spec"]["nodeName"] = nodeB_;
  expectRefused(patch(*agent_,
                      ObjectRef{ResourceKind::nodeEniAttachments(), "",
                                nodeEniAttachmentName(ns_, nodeA_), ""},
                      PatchType::Merge, move),
                "moving its object to another node");
  // Node B's object, as its own agent wrote it; node A's agent may delete it (a dead node's).
  NodeEniAttachmentWriter asAdmin(*admin_, clock, nodeB_);
  ASSERT_TRUE(write(asAdmin, ns_ + "-b"));
  auto pruned = await<Json::Value>(loop_, [&](auto done) {
    agent_->remove(ObjectRef{ResourceKind::nodeEniAttachments(), "",
                             nodeEniAttachmentName(ns_ + "-b", nodeB_), ""},
                   done);
  });
  EXPECT_TRUE(pruned) << pruned.error().describe();
  auto gone = await<Json::Value>(loop_, [&](auto done) {
    agent_->remove(
        ObjectRef{ResourceKind::nodeEniAttachments(), "", nodeEniAttachmentName(ns_, nodeA_), ""},
        done);
  });
  EXPECT_TRUE(gone) << gone.error().describe();
}

TEST_F(AdmissionPolicyTest, ItsOwnNodesStateAnnotationOnly) {
  auto own = patch(*agent_, node(nodeA_), PatchType::Merge, statePatch(R"({"v":1})"));
  ASSERT_TRUE(own) << own.error().describe();
  EXPECT_EQ((*own)["metadata"]["annotations"].get(kState, "").asString(), R"({"v":1})");
  auto removed = patch(*agent_, node(nodeA_), PatchType::Merge, statePatch(Json::Value()));
  EXPECT_TRUE(removed) << removed.error().describe();
  // A large node's state: the overlay alone, then the whole state with the overlay removed.
  Json::Value overlay;
  overlay["metadata"]["annotations"][kStatePending] = R"({"base":"0","version":1})";
  auto written = patch(*agent_, node(nodeA_), PatchType::Merge, overlay);
  ASSERT_TRUE(written) << written.error().describe();
  EXPECT_EQ((*written)["metadata"]["annotations"].get(kStatePending, "").asString(),
            R"({"base":"0","version":1})");
  Json::Value compact = statePatch(R"({"v":2})");
  compact["metadata"]["annotations"][kStatePending] = Json::Value();
  auto compacted = patch(*agent_, node(nodeA_), PatchType::Merge, compact);
  ASSERT_TRUE(compacted) << compacted.error().describe();
  EXPECT_FALSE((*compacted)["metadata"]["annotations"].isMember(kStatePending));
  expectRefused(patch(*agent_, node(nodeB_), PatchType::Merge, overlay),
                "another node's pending state annotation");

  expectRefused(patch(*agent_, node(nodeB_), PatchType::Merge, statePatch(R"({"v":1})")),
                "another node's state annotation");
  Json::Value label;
  label["metadata"]["labels"]["eni-agent.io/enabled"] = "false";
  expectRefused(patch(*agent_, node(nodeA_), PatchType::Merge, label), "its own node's label");
  Json::Value other;
  other["metadata"]["annotations"]["example.com/owner"] = "eni-agent";
  expectRefused(patch(*agent_, node(nodeA_), PatchType::Merge, other),
                "another annotation of its own node");
  Json::Value drop;
  drop["metadata"]["annotations"]["example.com/owner"] = Json::Value();
  drop["metadata"]["annotations"][kState] = "{}";
  expectRefused(patch(*agent_, node(nodeA_), PatchType::Merge, drop),
                "removing another annotation along with its own");
  Json::Value cordon;
  cordon["spec"]["unschedulable"] = true;
  expectRefused(patch(*agent_, node(nodeA_), PatchType::Merge, cordon), "its own node's spec");
  Json::Value taint;
  taint["spec"]["taints"][0]["key"] = "eni-agent.io/evil";
  taint["spec"]["taints"][0]["effect"] = "NoSchedule";
  expectRefused(patch(*agent_, node(nodeA_), PatchType::Merge, taint), "a taint on its node");

  // The cluster admin is not the agent: the policy does not touch its writes.
  auto adminLabel = patch(*admin_, node(nodeB_), PatchType::Merge, label);
  EXPECT_TRUE(adminLabel) << adminLabel.error().describe();
}

TEST_F(AdmissionPolicyTest, PodsOnItsNodeOnlyTheLastAppliedAnnotationsAndTheOldFinalizer) {
  const Json::Value tags = R"({"Team":"A"})";
  const Json::Value hash = "0123456789abcdef";
  auto wrote = patch(*agent_, pod("work-a"), PatchType::Merge, lastAppliedPatch(tags, hash));
  ASSERT_TRUE(wrote) << wrote.error().describe();
  auto dropped = patch(*agent_, pod("work-a"), PatchType::Merge,
                       lastAppliedPatch(Json::Value(), Json::Value()));
  EXPECT_TRUE(dropped) << dropped.error().describe();

  expectRefused(patch(*agent_, pod("work-b"), PatchType::Merge, lastAppliedPatch(tags, hash)),
                "a pod on another node");
  Json::Value label;
  label["metadata"]["labels"]["app"] = "evil";
  expectRefused(patch(*agent_, pod("work-a"), PatchType::Merge, label), "a label of its pod");
  Json::Value userTags;
  userTags["metadata"]["annotations"]["eni-tagger.io/tags"] = R"({"Owner":"attacker"})";
  expectRefused(patch(*agent_, pod("work-a"), PatchType::Merge, userTags),
                "the user's tags annotation");
  Json::Value addFinalizer;
  addFinalizer["metadata"]["finalizers"][0] = "eni-agent.io/keep";
  expectRefused(patch(*agent_, pod("work-a"), PatchType::Merge, addFinalizer),
                "adding a finalizer");
  Json::Value deadline;
  deadline["spec"]["activeDeadlineSeconds"] = 1;
  expectRefused(patch(*agent_, pod("work-a"), PatchType::Merge, deadline), "its pod's spec");

  // k8s-eni-tagger's finalizer on a deleting pod: finish() removes only that one, conditionally.
  ASSERT_TRUE(createPod("leaving", nodeA_, "", {kOldFinalizer, "example.com/keep"}));
  kubectl({"-n", ns_, "delete", "pod", "leaving", "--wait=false"});
  auto leaving = await<Json::Value>(loop_, [&](auto done) { admin_->get(pod("leaving"), done); });
  ASSERT_TRUE(leaving) << leaving.error().describe();
  ASSERT_TRUE((*leaving)["metadata"].isMember("deletionTimestamp"));
  const std::string rv = (*leaving)["metadata"].get("resourceVersion", "").asString();
  Json::Value keepOnly;
  keepOnly["metadata"]["finalizers"][0] = "example.com/keep";
  keepOnly["metadata"]["resourceVersion"] = rv;
  Json::Value oldOnly;
  oldOnly["metadata"]["finalizers"][0] = kOldFinalizer;
  oldOnly["metadata"]["resourceVersion"] = rv;
  expectRefused(patch(*agent_, pod("leaving"), PatchType::Merge, oldOnly),
                "removing another finalizer");
  auto removed = patch(*agent_, pod("leaving"), PatchType::Merge, keepOnly);
  EXPECT_TRUE(removed) << removed.error().describe();
  // The tagger also sets the condition of a deleting pod.
  auto condition = patch(*agent_, pod("leaving", "status"), PatchType::Strategic,
                         conditionPatch("eni-tagger.io/tagged", "True"));
  EXPECT_TRUE(condition) << condition.error().describe();
  Json::Value release;
  release["metadata"]["finalizers"] = Json::Value(Json::arrayValue);
  auto released = patch(*admin_, pod("leaving"), PatchType::Merge, release);
  EXPECT_TRUE(released) << released.error().describe();
}

TEST_F(AdmissionPolicyTest, PodStatusOnlyTheTaggedConditionAndTheLastAppliedAnnotations) {
  auto tagged = patch(*agent_, pod("work-a", "status"), PatchType::Strategic,
                      conditionPatch("eni-tagger.io/tagged", "True"));
  ASSERT_TRUE(tagged) << tagged.error().describe();
  auto again = patch(*agent_, pod("work-a", "status"), PatchType::Strategic,
                     conditionPatch("eni-tagger.io/tagged", "False"));
  EXPECT_TRUE(again) << again.error().describe();
  // The tagger records the last-applied tags with the condition, in one pods/status patch.
  Json::Value both = lastAppliedPatch(R"({"Team":"A"})", "0123456789abcdef");
  both["status"] = conditionPatch("eni-tagger.io/tagged", "True")["status"];
  auto recorded = patch(*agent_, pod("work-a", "status"), PatchType::Strategic, both);
  EXPECT_TRUE(recorded) << recorded.error().describe();
  Json::Value userTags;
  userTags["metadata"]["annotations"]["eni-tagger.io/tags"] = R"({"Owner":"attacker"})";
  expectRefused(patch(*agent_, pod("work-a", "status"), PatchType::Strategic, userTags),
                "the user's tags annotation through pods/status");
  expectRefused(patch(*agent_, pod("work-b", "status"), PatchType::Strategic,
                      lastAppliedPatch(R"({"Team":"A"})", "0123456789abcdef")),
                "the last-applied annotations of a pod on another node");

  expectRefused(patch(*agent_, pod("work-a", "status"), PatchType::Strategic,
                      conditionPatch("Ready", "False")),
                "another condition type");
  Json::Value message;
  message["status"]["message"] = "evicted";
  expectRefused(patch(*agent_, pod("work-a", "status"), PatchType::Merge, message),
                "a status field the kubelet owns");
  expectRefused(patch(*agent_, pod("work-b", "status"), PatchType::Strategic,
                      conditionPatch("eni-tagger.io/tagged", "True")),
                "the condition of a pod on another node");
  Json::Value label;
  label["metadata"]["labels"]["app"] = "evil";
  expectRefused(patch(*agent_, pod("work-a", "status"), PatchType::Merge, label),
                "a label through pods/status");
}

TEST_F(AdmissionPolicyTest, ATokenWithoutANodeClaimIsRefused) {
  auto token = sa_->unboundToken();
  ASSERT_TRUE(token) << token.error().message;
  auto config = PolicedServiceAccount::configWithToken(*token);
  ASSERT_TRUE(config) << config.error().message;
  CurlKubeClient unbound(http_, *config);
  auto r = patch(unbound, node(nodeA_), PatchType::Merge, statePatch(R"({"v":1})"));
  expectRefused(r, "a token without the node claim");
  if (!r) {
    EXPECT_NE(r.error().message.find("no node claim"), std::string::npos) << r.error().message;
  }
  expectRefused(patch(unbound, pod("work-a"), PatchType::Merge,
                      lastAppliedPatch(R"({"Team":"A"})", "0123456789abcdef")),
                "a pod, with a token without the node claim");
}

}  // namespace
}  // namespace eni
