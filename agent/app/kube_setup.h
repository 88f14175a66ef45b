#pragma once

#include "agent/config/options.h"
#include "agent/kube/kube_config.h"

namespace eni {

/// The Kubernetes client configuration of the command line: --kubeconfig (or KUBECONFIG) when
/// set, else in-cluster (KUBERNETES_SERVICE_HOST/PORT and the service-account token). Shared by
/// `run` and `status`.
[[nodiscard]] Result<KubeConfig> kubeConfigFor(const AgentOptions& options);

}  // namespace eni
