// `eni-agent run` in host mode (systemd on EC2 without Kubernetes).
#include <cstdio>

#include "agent/app/commands.h"

int eni::runHost(const AgentOptions& /*options*/) {
  std::fprintf(stderr,
               "eni-agent: host mode is not in this build yet; pass --kubeconfig or run in a "
               "cluster\n");
  return kExitFailure;
}
