#include "agent/app/kube_setup.h"

#include "agent/base/env.h"

namespace eni {
namespace {
constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
}  // namespace

Result<KubeConfig> kubeConfigFor(const AgentOptions& options) {
  if (!options.kubeconfig.empty()) return loadKubeconfig(options.kubeconfig);
  auto env = processEnv();
  return loadInCluster(env("KUBERNETES_SERVICE_HOST").value_or(""),
                       env("KUBERNETES_SERVICE_PORT").value_or(""), kServiceAccountDir);
}

}  // namespace eni
