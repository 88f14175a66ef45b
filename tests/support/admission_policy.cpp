#include "tests/support/admission_policy.h"

#include <unistd.h>

#include <fstream>

#include "agent/base/files.h"
#include "tests/support/test_stack.h"

namespace eni::testing {

namespace {

constexpr const char* kPolicyName = "eni-agent-own-node-only";
constexpr const char* kAgentUsername = "system:serviceaccount:eni-agent:eni-agent";

/// Replaces every `from` in `text`; returns how many.
int replaceAll(std::string& text, const std::string& from, const std::string& to) {
  int n = 0;
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
    ++n;
  }
  return n;
}

}  // namespace

PolicedServiceAccount::PolicedServiceAccount(std::string ns, std::string name)
    : ns_(std::move(ns)), name_(std::move(name)), objectName_(kPolicyName) {
  objectName_ += "-" + ns_ + "-" + name_;
}

Result<std::string> PolicedServiceAccount::kubectl(const std::vector<std::string>& args) const {
  const auto& stack = TestStack::get();
  std::vector<std::string> argv = {stack.kubectl, "--kubeconfig", stack.adminKubeconfig};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runProcess(argv);
  if (r.status != 0) return fail(ErrorCode::Internal, "kubectl " + args[0] + ": " + r.err);
  return r.out;
}

Result<std::unique_ptr<PolicedServiceAccount>> PolicedServiceAccount::create(
    const std::string& ns, const std::string& name) {
  std::unique_ptr<PolicedServiceAccount> sa(new PolicedServiceAccount(ns, name));
  auto yaml = readFile(std::string(ENI_SOURCE_DIR) + "/daemonset/admission-policy.yaml");
  if (!yaml) return fail(yaml.error());
  // The file names the agent's account once and its own objects by one name: a test that
  // substituted nothing would test nothing.
  if (replaceAll(*yaml, kAgentUsername, sa->username()) != 1)
    return fail(ErrorCode::Internal,
                "admission-policy.yaml: the agent's username is not there once");
  if (replaceAll(*yaml, kPolicyName, sa->objectName_) != 3)
    return fail(ErrorCode::Internal,
                "admission-policy.yaml: expected the policy, the binding and "
                "its policyName to be named " +
                    std::string(kPolicyName));
  const std::string path = "/tmp/eni-admission-policy-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(path) << *yaml;
  auto applied = sa->kubectl({"apply", "-f", path});
  unlink(path.c_str());
  if (!applied) return fail(applied.error());
  if (auto r = sa->kubectl({"-n", ns, "create", "serviceaccount", name}); !r)
    return fail(r.error());
  if (auto r = sa->kubectl({"create", "clusterrolebinding", sa->objectName_,
                            "--clusterrole=eni-agent", "--serviceaccount=" + ns + ":" + name});
      !r)
    return fail(r.error());
  // The node lease, as daemonset/rbac.yaml gives it to the agent's own account.
  if (auto r = sa->kubectl({"-n", "eni-agent", "create", "rolebinding", sa->objectName_,
                            "--role=eni-agent-lease", "--serviceaccount=" + ns + ":" + name});
      !r)
    return fail(r.error());
  // k8s-eni-tagger's ConfigMap eni-tagger-cache: a get of that one name in kube-system.
  if (auto r =
          sa->kubectl({"-n", "kube-system", "create", "rolebinding", sa->objectName_,
                       "--role=eni-agent-eni-tagger-cache", "--serviceaccount=" + ns + ":" + name});
      !r)
    return fail(r.error());
  return sa;
}

PolicedServiceAccount::~PolicedServiceAccount() {
  (void)kubectl({"delete", "--ignore-not-found", "--wait=false",
                 "validatingadmissionpolicybinding/" + objectName_,
                 "validatingadmissionpolicy/" + objectName_, "clusterrolebinding/" + objectName_});
  (void)kubectl({"-n", "eni-agent", "delete", "--ignore-not-found", "--wait=false",
                 "rolebinding/" + objectName_});
  (void)kubectl({"-n", "kube-system", "delete", "--ignore-not-found", "--wait=false",
                 "rolebinding/" + objectName_});
}

Result<std::string> PolicedServiceAccount::tokenBoundTo(const std::string& pod) const {
  auto token = kubectl({"-n", ns_, "create", "token", name_, "--bound-object-kind=Pod",
                        "--bound-object-name=" + pod, "--duration=1h"});
  if (!token) return token;
  while (!token->empty() && (token->back() == '\n' || token->back() == ' ')) token->pop_back();
  return token;
}

Result<std::string> PolicedServiceAccount::unboundToken() const {
  auto token = kubectl({"-n", ns_, "create", "token", name_, "--duration=1h"});
  if (!token) return token;
  while (!token->empty() && token->back() == '\n') token->pop_back();
  return token;
}

Result<KubeConfig> PolicedServiceAccount::configWithToken(const std::string& token) {
  auto config = loadKubeconfig(TestStack::get().adminKubeconfig);
  if (!config) return config;
  config->clientCertPem.clear();
  config->clientKeyPem.clear();
  config->token = token;
  config->source = "a test token";
  return config;
}

}  // namespace eni::testing
