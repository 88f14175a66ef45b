#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/privileges.h"

namespace eni {

/// Which world the agent runs in.
enum class RunMode { Auto, Kubernetes, Host };

/// --shared-eni-tagging: which ENIs the tagger may tag besides those that are one pod's alone.
enum class SharedEniTagging {
  /// k8s-eni-tagger's rule: an ENI with more than one private IPv4 (or a delegated prefix), a
  /// trunk ENI and the node's primary ENI (device index 0) are refused with ENIValidationFailed.
  Refuse,
  /// ENIs several pods share get the tags the pods agree on; the primary ENI is still refused.
  Merge,
  /// Every ENI, the primary included, without the hash and agreement checks: k8s-eni-tagger's
  /// --allow-shared-eni-tagging.
  Any,
};
std::string_view toString(SharedEniTagging mode);

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
  SharedEniTagging sharedEniTagging = SharedEniTagging::Refuse;
  bool sharedEniTaggingGiven = false;  // --shared-eni-tagging was set (flag or variable)
  bool allowSharedEniTagging = false;  // as given; parseCommandLine folds it into the mode (Any)
  std::string watchNamespace;          // pods of this namespace only; empty: every namespace
  // Where k8s-eni-tagger's ConfigMap eni-tagger-cache is read from at start; empty: not read.
  std::string eniTaggerCacheNamespace = "kube-system";
  bool dryRun = false;
  double awsRateLimitQps = 5;
  std::int64_t awsRateLimitBurst = 10;
  Duration resyncInterval = std::chrono::minutes(30);
  Duration nodeEniCheckInterval = std::chrono::minutes(5);
  Duration watchIdleTimeout = std::chrono::seconds(60);
  /// A NodeENI whose deletion has not completed this long after it started loses its finalizer
  /// (aws-multi-eni-controller's MAX_CLEANUP_DURATION).
  Duration maxCleanupDuration = std::chrono::minutes(30);
  /// ENI releases (detach, wait, delete) at once (aws-multi-eni-controller's
  /// MAX_CONCURRENT_ENI_CLEANUP).
  std::int64_t releaseConcurrency = 3;
  /// How long a release waits for EC2 to show a detached ENI available before it leaves the rest
  /// to the next pass (aws-multi-eni-controller's DETACHMENT_TIMEOUT).
  Duration detachTimeout = std::chrono::seconds(30);
  /// aws-multi-eni-controller's DEFAULT_DELETE_ON_TERMINATION when set. It overrode the NodeENI's
  /// spec there; here the spec wins, and a NodeENI that disagrees is logged once.
  std::optional<bool> legacyDefaultDeleteOnTermination;
  /// Where sysfs is, for binding the devices of NodeENIs with enableDPDK; empty: no DPDK (such
  /// NodeENIs are refused).
  std::string dpdkSysfsRoot = "/sys";
  /// The SR-IOV network device plugin's config, which lists the devices bound for DPDK.
  std::string sriovConfigPath = "/etc/pcidp/config.json";
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
  /// k8s-eni-tagger's flags that were given and mean nothing here, by name, in the order given;
  /// noEffectLines() says why for each.
  std::vector<std::string> noEffectFlags;
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
