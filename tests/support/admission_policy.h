#pragma once

#include <memory>
#include <string>

#include "agent/base/error.h"
#include "agent/kube/kube_config.h"

namespace eni::testing {

/// A ServiceAccount of a test's own that holds the agent's ClusterRole and falls under
/// daemonset/admission-policy.yaml: the same file, with this account's username in place of the
/// agent's and names of its own. The test stack does not apply the policy for the real agent
/// account, whose tests run with a token bound to no pod. Removes the cluster-scoped objects it
/// made (policy, binding, ClusterRoleBinding) on destruction.
class PolicedServiceAccount {
 public:
  /// Creates ServiceAccount ns/name (the namespace must exist), binds the ClusterRole eni-agent and
  /// the Roles eni-agent-lease and eni-agent-eni-tagger-cache to it and applies the policy for it.
  /// The policy may take a moment to be enforced.
  [[nodiscard]] static Result<std::unique_ptr<PolicedServiceAccount>> create(
      const std::string& ns, const std::string& name);
  ~PolicedServiceAccount();
  PolicedServiceAccount(const PolicedServiceAccount&) = delete;
  PolicedServiceAccount& operator=(const PolicedServiceAccount&) = delete;

  /// A token of this account bound to `pod` in its namespace (TokenRequest with boundObjectRef
  /// kind Pod, what the kubelet's projected volume gets): it carries the pod's node claim. The
  /// pod must run as this account.
  [[nodiscard]] Result<std::string> tokenBoundTo(const std::string& pod) const;
  /// A token of this account bound to nothing, so without a node claim.
  [[nodiscard]] Result<std::string> unboundToken() const;
  /// The test stack's API server with `token`.
  [[nodiscard]] static Result<KubeConfig> configWithToken(const std::string& token);
  /// The name of the policy, its binding and the ClusterRoleBinding.
  const std::string& objectName() const { return objectName_; }
  /// "system:serviceaccount:<ns>:<name>".
  std::string username() const { return "system:serviceaccount:" + ns_ + ":" + name_; }

 private:
  PolicedServiceAccount(std::string ns, std::string name);
  [[nodiscard]] Result<std::string> kubectl(const std::vector<std::string>& args) const;
  std::string ns_;
  std::string name_;
  std::string objectName_;
};

}  // namespace eni::testing
