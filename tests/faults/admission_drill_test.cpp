// The real agent under daemonset/admission-policy.yaml, with a token bound to its own pod as the
// DaemonSet's projected token is: every write it makes passes the policy. It tags pods, records
// last-applied tags, sets conditions, writes the node state (the tagger's and the ENI manager's
// write-aheads), removes k8s-eni-tagger's finalizer and cleans up a NodeENI, and none of those
// writes is refused.
#include <unistd.h>

#include <fstream>

#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/state/node_state.h"
#include "agent/tagger/tagger.h"
#include "tests/faults/drill.h"
#include "tests/support/admission_policy.h"

namespace eni::faults {
namespace {

using testing::PolicedServiceAccount;

class AdmissionDrill : public Drill {
 protected:
  /// A kubeconfig for the stack's API server with `token`; returns its path.
  std::string writeKubeconfig(const std::string& token) {
    auto admin = readFile(stack().adminKubeconfig);
    EXPECT_TRUE(admin);
    auto parsed = parseJson(admin.value_or("{}"));
    EXPECT_TRUE(parsed);
    Json::Value config = parsed.value_or(Json::Value());
    config["users"][0]["user"] = Json::Value(Json::objectValue);
    config["users"][0]["user"]["token"] = token;
    const std::string path = "/tmp/eni-admission-drill-" + std::to_string(getpid()) + ".kubeconfig";
    std::ofstream(path) << toJson(config);
    return path;
  }

  Result<Json::Value> patchNode(KubeApi& as, const std::string& node, const Json::Value& body) {
    return call([&](auto done) {
      as.patch(ObjectRef{ResourceKind::nodes(), "", node, ""}, PatchType::Merge, body, {}, done);
    });
  }

  /// A ServiceAccount under the policy (kept in sa_), the agent's pod on this drill's node running
  /// as it, and a token bound to that pod; returns the token once the policy is enforced, "" on
  /// failure.
  std::string policedAgentToken() {
    // Another node, to see when the policy is enforced.
    Json::Value other;
    other["metadata"]["name"] = node_ + "-b";
    auto sa = PolicedServiceAccount::create(ns_, "agent");
    if (!call([&](auto done) {
          admin_->create(ObjectRef{ResourceKind::nodes(), "", "", ""}, other, done);
        }) ||
        !sa) {
      ADD_FAILURE() << "cannot set up the ServiceAccount under the policy";
      return "";
    }
    sa_ = std::move(*sa);
    Json::Value agentPod;
    agentPod["metadata"]["name"] = "eni-agent";
    agentPod["spec"]["nodeName"] = node_;
    agentPod["spec"]["serviceAccountName"] = "agent";
    agentPod["spec"]["containers"][0]["name"] = "eni-agent";
    agentPod["spec"]["containers"][0]["image"] = "registry.invalid/eni-agent";
    auto pod = call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::pods(), ns_, "", ""}, agentPod, done);
    });
    auto token = pod ? sa_->tokenBoundTo("eni-agent") : fail(pod.error());
    auto config = token ? PolicedServiceAccount::configWithToken(*token) : fail(token.error());
    if (!config) {
      ADD_FAILURE() << config.error().describe();
      return "";
    }
    CurlKubeClient asAgent(http_, *config);
    Json::Value probe;
    probe["metadata"]["annotations"][kNodeStateAnnotation] = "probe";
    if (!eventually([&] {
          auto r = patchNode(asAgent, node_ + "-b", probe);
          return !r && r.error().httpStatus == 403;
        })) {
      ADD_FAILURE() << "the policy was never enforced";
      return "";
    }
    return *token;
  }

  Result<Json::Value> get(const ObjectRef& ref) {
    return call([&](auto done) { admin_->get(ref, done); });
  }

  std::unique_ptr<PolicedServiceAccount> sa_;
};

TEST_F(AdmissionDrill, EveryWriteOfTheAgentPassesThePolicyWithATokenBoundToItsPod) {
  createNamespace();
  createNode({{"fd-admission", "yes"}});
  const std::string token = policedAgentToken();
  ASSERT_FALSE(token.empty());

  auto pods = makePods(3, "adm");
  createPod(pods[0], "Team=a");
  createPod(pods[1], "Team=b,Cost=1");
  createPod(pods[2], "Team=c");
  Json::Value finalizer;
  finalizer["metadata"]["finalizers"][0] = kOldTaggerFinalizer;
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns_, pods[2].name, ""}, PatchType::Merge,
                  finalizer, {}, done);
  }));
  createNodeEni(node_, "fd-admission", "yes", {stack().subnetC}, 75);

  auto agent = startAgent({"--kubeconfig=" + writeKubeconfig(token)});
  std::vector<std::string> mismatches;
  ASSERT_TRUE(eventually([&] {
    mismatches = tagMismatches(pods);
    return mismatches.empty() && conditionReason(pods[0]) == "Synced" &&
           ownedEnis(node_).size() == 1 && statusOf(node_).size() == 1;
  })) << (mismatches.empty() ? "" : mismatches[0])
      << "\n"
      << agent->output();
  auto pod = get(ObjectRef{ResourceKind::pods(), ns_, pods[0].name, ""});
  ASSERT_TRUE(pod);
  EXPECT_TRUE((*pod)["metadata"]["annotations"].isMember(kLastAppliedTagsAnnotation));

  // A change, a deletion, and a deletion that k8s-eni-tagger's finalizer holds until the agent
  // has cleaned up.
  annotate(pods[0], "Team=z");
  deletePod(pods[1]);
  deletePod(pods[2]);
  ASSERT_TRUE(eventually([&] {
    mismatches = tagMismatches(pods);
    auto held = get(ObjectRef{ResourceKind::pods(), ns_, pods[2].name, ""});
    return mismatches.empty() && !held && held.error().code == ErrorCode::NotFound;
  })) << (mismatches.empty() ? "k8s-eni-tagger's finalizer stayed" : mismatches[0])
      << "\n"
      << agent->output();

  deleteNodeEni(node_);
  ASSERT_TRUE(eventually([&] {
    auto gone = getNodeEni(node_);
    return ownedEnis(node_).empty() && !gone && gone.error().code == ErrorCode::NotFound;
  })) << agent->output();
  auto node = get(ObjectRef{ResourceKind::nodes(), "", node_, ""});
  ASSERT_TRUE(node);
  EXPECT_TRUE((*node)["metadata"]["annotations"].isMember(kNodeStateAnnotation));

  const std::string output = agent->output();
  for (const char* refused : {"ValidatingAdmissionPolicy", "cannot record last-applied",
                              "cannot set the pod condition", "cannot write the node state"}) {
    EXPECT_EQ(output.find(refused), std::string::npos) << refused << "\n" << output;
  }
  EXPECT_EQ(agent->terminate(), 0) << output;
}

}  // namespace
}  // namespace eni::faults
