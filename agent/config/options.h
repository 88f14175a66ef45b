#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/privileges.h"

namespace eni {

/// Which world the agent runs in.
enum class RunMode { Auto, Kubernetes, Host };

/// Every flag of DESIGN.md's command line, after flags and ENI_AGENT_* variables are applied.
struct AgentOptions {
  RunMode mode = RunMode::Auto;
  std::string nodeName;
  std::string kubeconfig;
  std::string configPath = "/etc/eni-agent/host.json";
  std::string stateDir = "/var/lib/eni-agent";
  std::string region;
  std::string annotationKey = "eni-tagger.io/tags";
  std::string tagNamespace;
  std::vector<std::string> subnetIds;
  bool allowSharedEniTagging = false;
  bool dryRun = false;
  double awsRateLimitQps = 5;
  std::int64_t awsRateLimitBurst = 10;
  Duration resyncInterval = std::chrono::minutes(30);
  Duration watchIdleTimeout = std::chrono::seconds(60);
  bool enableTagger = true;
  bool enableEniManager = true;
  bool manageLinks = true;
  std::string linkNetns;
  std::optional<RunAsUser> runAsUser;  // empty: keep the identity the process started with
  std::string metricsBindAddress = ":8090";
  // Loopback: the probes are unauthenticated, and the kubelet probes a hostNetwork pod from the
  // node itself.
  std::string healthProbeBindAddress = "127.0.0.1:8081";
  LogFormat logFormat = LogFormat::Json;
  LogLevel logLevel = LogLevel::Info;
};

/// What the command line asks for.
enum class CommandKind { Run, Status, ValidateTags, Version, Help };

struct Command {
  CommandKind kind = CommandKind::Run;
  AgentOptions options;
  std::string statusOutput = "table";  // status --output table|json
  std::vector<std::string> arguments;  // positional arguments of the sub-command
};

}  // namespace eni
