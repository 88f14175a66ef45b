// The composition root of `eni-agent run` in Kubernetes mode: it builds the real adapters (kube
// client, EC2, IMDS, netlink), wires them to the tagger and the ENI manager, serves health and
// metrics, and runs the loop. No logic lives here.
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/app/aws_probe.h"
#include "agent/app/commands.h"
#include "agent/app/kube_setup.h"
#include "agent/app/run_as_user.h"
#include "agent/app/wiring.h"
#include "agent/base/event_loop.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/signals.h"
#include "agent/base/timer.h"
#include "agent/base/worker_pool.h"
#include "agent/dpdk/dpdk_devices.h"
#include "agent/dpdk/sysfs.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/enimanager/eni_manager.h"
#include "agent/http/http_client.h"
#include "agent/kube/bounded_writes.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_lease.h"
#include "agent/kube/node_view.h"
#include "agent/obs/readiness.h"
#include "agent/state/annotation_state_store.h"
#include "agent/tagger/tagger.h"
#include "netlink/nl_link_manager.h"

namespace eni {
namespace {

[[nodiscard]] std::optional<KubeConfig> loadKubeConfig(const AgentOptions& options) {
  auto config = kubeConfigFor(options);
  if (config) return std::move(*config);
  std::string error = config.error().message;
  if (options.runAsUser && config.error().code == ErrorCode::Permission) {
    error += " (read as --run-as-user " + toString(*options.runAsUser) +
             "; in the DaemonSet the pod's securityContext.fsGroup must be its group, so that "
             "the kubelet makes the token readable to it)";
  }
  logError("cannot configure the Kubernetes client", {{"error", error}});
  return std::nullopt;
}

// SIGTERM and SIGINT. The first one runs firstStop_: stop the loop or, once the lease is held,
// give it up and then stop. A second one stops at once.
class Stopping {
 public:
  explicit Stopping(EventLoop& loop)
      : loop_(loop),
        releaseBound_(loop,
                      [&loop] {
                        logWarn(
                            "the node lease was not released in time; the next agent waits for "
                            "it to expire");
                        loop.stop();
                      }),
        signals_(loop, {SIGTERM, SIGINT}, [this](int signal) {
          logInfo("stopping", {{"signal", signal}});
          std::exchange(firstStop_, [this] { loop_.stop(); })();
        }) {}

  void releaseLeaseFirst(NodeLease& lease, AnnotationStateStore& state) {
    firstStop_ = [this, &lease, &state] { releaseThenStop(lease, state); };
  }

 private:
  // A clean stop writes the whole node state when only an overlay holds its last changes (for
  // readers of eni-agent.io/state alone, and an older agent after a rollback), then hands the
  // lease over (a rolling update's next pod takes it at its next read, not after the lease
  // duration), bounded: an API server that does not answer does not hold the stop. The loop stops
  // only then, so the tagger and the ENI manager run until the release is written.
  void releaseThenStop(NodeLease& lease, AnnotationStateStore& state) {
    releaseBound_.enable(Duration(3000));
    state.compactNow([this, &lease] { release(lease); });
  }
  void release(NodeLease& lease) {
    lease.release([this](Result<void> released) {
      if (!released) {
        logWarn("cannot release the node lease; the next agent waits for it to expire",
                {{"error", released.error().describe()}});
      }
      releaseBound_.disable();
      loop_.stop();
    });
  }

  EventLoop& loop_;
  std::function<void()> firstStop_ = [this] { loop_.stop(); };
  Timer releaseBound_;
  SignalWatcher signals_;
};

// The API server side. At most 3 writes in flight: 110 pods synced at once are 110 writes, and
// each one in flight slows the API server's answer to the node-state patch a pass's tags wait on
// (which goes beside the limit, see BoundedWrites). 8 instead of 32 took tag latency p99 from
// 378-403 to 278-349 ms; 3 instead of 8 from 103-253 to 100-185 ms at load 1 and over, the pods'
// conditions as fast as before (docs/benchmarks.md).
struct KubeAdapters {
  KubeAdapters(EventLoop& loop, const KubeConfig& config, const AgentOptions& options)
      : http(loop), client(http, config, clientOptions(options)), writes(client, 3) {}
  static KubeClientOptions clientOptions(const AgentOptions& options) {
    KubeClientOptions o;
    o.watchIdleTimeout = options.watchIdleTimeout;
    return o;
  }
  HttpClient http;
  CurlKubeClient client;
  BoundedWrites writes;
};

SharedEniPolicy sharedEniPolicy(SharedEniTagging mode) {
  switch (mode) {
    case SharedEniTagging::Merge:
      return SharedEniPolicy::Merge;
    case SharedEniTagging::Any:
      return SharedEniPolicy::Any;
    case SharedEniTagging::Refuse:
      break;
  }
  return SharedEniPolicy::Refuse;
}

TaggerOptions taggerOptionsFor(const AgentOptions& options) {
  TaggerOptions o;
  o.nodeName = options.nodeName;
  o.annotationKey = options.annotationKey;
  o.tagNamespace = TagNamespace{options.tagNamespace};
  o.subnetIds = options.subnetIds;
  o.sharedEnis = sharedEniPolicy(options.sharedEniTagging);
  o.eniTaggerCacheNamespace = options.eniTaggerCacheNamespace;
  o.dryRun = options.dryRun;
  o.resyncInterval = options.resyncInterval;
  return o;
}

EniManagerOptions managerOptionsFor(const AgentOptions& options, const EnvLookup& env) {
  EniManagerOptions o;
  o.nodeName = options.nodeName;
  o.dryRun = options.dryRun;
  o.checkInterval = options.nodeEniCheckInterval;
  o.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");  // "before-status"; the rest: lifecycle
  o.maxCleanupDuration = options.maxCleanupDuration;
  o.legacyDefaultDeleteOnTermination = options.legacyDefaultDeleteOnTermination;
  return o;
}

EniLifecycleOptions lifecycleOptionsFor(const AgentOptions& options, const EnvLookup& env) {
  EniLifecycleOptions o;
  o.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");
  o.releaseConcurrency = static_cast<std::size_t>(options.releaseConcurrency);
  // One Describe per poll interval, for as long as --detach-timeout says (rounded up).
  const auto interval = o.detachPollInterval.count();
  o.detachPolls = static_cast<int>((options.detachTimeout.count() + interval - 1) / interval);
  return o;
}

// The core: the node state's one keeper (the tagger and the ENI manager each change their slice
// of it), the tagger, the ENI manager and the links it configures, their AWS worker, and the ENI
// lifecycle with the threads its releases wait on (never the AWS worker that tags).
struct Reconcilers {
  Reconcilers(const AgentOptions& options, EventLoop& loop, BaseAdapters& base, Ec2Adapters& aws,
              KubeApi& kube, LinkManager& links)
      : awsWorker(std::make_unique<WorkerThread>(loop)),
        releaseWorkers(std::make_unique<WorkerPool>(
            loop, lifecycleOptionsFor(options, base.env).releaseConcurrency)),
        lifecycle(aws.ec2, *releaseWorkers, base.sleeper, lifecycleOptionsFor(options, base.env)),
        stateStore(kube, loop, {options.nodeName}),
        tagger(kube, aws.ec2, base.imds, loop, *awsWorker, base.clock, stateStore,
               taggerOptionsFor(options)),
        linkReconciler(links, base.clock),
        sysfs(options.dpdkSysfsRoot),
        pciBinder(sysfs, &base.sleeper),
        sriovConfig(options.sriovConfigPath),
        dpdk(pciBinder, sriovConfig),
        manager(kube, aws.ec2, base.imds, loop, base.clock, *awsWorker, lifecycle, stateStore,
                options.manageLinks ? &linkReconciler : nullptr,
                managerOptionsFor(options, base.env),
                options.dpdkSysfsRoot.empty() ? nullptr : &dpdk, releaseWorkers.get()) {}
  // The threads are joined before the tagger and the ENI manager go: a pass or a release still
  // running on them uses them.
  ~Reconcilers() {
    lifecycle.stop();
    releaseWorkers.reset();
    awsWorker.reset();
  }
  Reconcilers(const Reconcilers&) = delete;
  Reconcilers& operator=(const Reconcilers&) = delete;

  std::unique_ptr<WorkerThread> awsWorker;
  std::unique_ptr<WorkerPool> releaseWorkers;
  EniLifecycle lifecycle;
  AnnotationStateStore stateStore;
  Tagger tagger;
  LinkReconciler linkReconciler;
  FileSysfs sysfs;
  PciBinder pciBinder;
  SriovConfigFile sriovConfig;
  DpdkDevices dpdk;
  EniManager manager;
};

NodeView::Handlers viewHandlers(const AgentOptions& options, Reconcilers& core) {
  NodeView::Handlers h;
  h.pods = [&options, &core](ChangeType type, const Json::Value& object) {
    if (options.enableTagger) core.tagger.onPod(type, object);
  };
  h.node = [&options, &core](ChangeType type, const Json::Value& object) {
    core.stateStore.onNode(type, object);
    if (options.enableEniManager) core.manager.onNode(type, object);
  };
  h.nodeEnis = [&options, &core](ChangeType type, const Json::Value& object) {
    if (options.enableEniManager) core.manager.onNodeEni(type, object);
  };
  h.synced = [&options, &core] {
    if (options.enableTagger) core.tagger.start();
    if (options.enableEniManager) core.manager.start();
  };
  return h;
}

NodeLeaseOptions leaseOptionsFor(const std::string& nodeName, const EnvLookup& env) {
  NodeLeaseOptions o;
  o.ns = env("POD_NAMESPACE").value_or("");
  if (o.ns.empty()) o.ns = kDefaultLeaseNamespace;
  o.name = leaseNameFor(nodeName);
  o.identity = leaseIdentity(env("POD_NAME").value_or(""));
  return o;
}

// One agent per node: nothing is read for the tagger and the ENI manager, so nothing written,
// before this agent holds the node's lease (docs/operations.md, "One agent per node").
NodeLease::Handlers leaseHandlers(EventLoop& loop, NodeView& view, int& exitCode) {
  return {[&view] { view.start(); },
          [&loop, &exitCode](const std::string& why) {
            logError("lost the node lease, stopping", {{"error", why}});
            exitCode = kExitFailure;
            loop.stop();
          }};
}

void addReadinessChecks(Readiness& readiness, NodeLease& lease, AnnotationStateStore& stateStore,
                        NodeView& view, CurlEc2Client& ec2) {
  readiness.addCheck("lease", [&lease] { return lease.notReadyReason(); });
  // A rollback below the version that wrote the node state: this agent may not keep it.
  readiness.addCheck("state", [&stateStore] { return stateStore.problem(); });
  // Until the lease is held the view has not started, and the lease check says why.
  readiness.addCheck("kubernetes", [&view, &lease] {
    return !lease.held() || view.live() ? "" : view.waitingFor();
  });
  readiness.addCheck("aws", [&ec2] { return ec2.health().problem(); });
}

void addKubeMetrics(const CurlKubeClient& client, MetricsSnapshot& m) {
  for (const auto& [resource, t] : client.traffic().byResource()) {
    m.kubeWatchBytes[resource] = t.watchBytes;
    m.kubeListBytes[resource] = t.listBytes;
    m.kubeWatchEvents[resource] = t.watchEvents;
  }
}

Reporter::Hooks reportHooks(const AgentOptions& options, Reconcilers& core, NodeView& view,
                            const CurlKubeClient& client) {
  Reporter::Hooks hooks;
  hooks.onReadiness = [node = options.nodeName, wasReady = false,
                       lastReason = std::string()](const ReadinessReport& report) mutable {
    const std::string& reason = report.detail;
    if (reason.empty() && !wasReady) logInfo("ready", {{"node", node}});
    if (!reason.empty() && reason != lastReason)
      logWarn("not ready, will retry", {{"reason", reason}});
    wasReady = reason.empty();
    lastReason = reason;
  };
  hooks.addMetrics = [&core, &view, &client](MetricsSnapshot& m) {
    for (const auto& [source, n] : core.tagger.counters().resolveSources()) {
      m.resolveSources[std::string(toString(source))] = n;
    }
    for (const auto& [result, n] : core.tagger.counters().syncResults()) {
      m.podTagSync[std::string(toString(result))] = n;
    }
    m.tagSync = core.tagger.counters().latencyHistogram();
    m.linkConfigure = core.linkReconciler.latencyHistogram();
    m.managedEnis = core.manager.attachments().size();
    m.reconcileErrors = core.tagger.counters().reconcileErrors();
    m.watchRestarts = view.watchRestarts();
    addKubeMetrics(client, m);
  };
  return hooks;
}

void logStarting(const AgentOptions& options, const KubeConfig& config, const std::string& region,
                 const Ec2Adapters& aws) {
  logInfo("starting", {{"node", options.nodeName},
                       {"api_server", config.server},
                       {"region", region},
                       {"ec2_endpoint", aws.config.endpoint},
                       {"credentials", aws.credentials.source()},
                       {"dry_run", options.dryRun ? "true" : "false"},
                       {"link_netns", options.linkNetns.empty() ? "own" : options.linkNetns}});
}

}  // namespace

int runKubernetes(const AgentOptions& options) {
  if (options.nodeName.empty()) {
    logError(
        "no node name: set --node-name or NODE_NAME (the DaemonSet sets it from the downward "
        "API)");
    return kExitUsage;
  }
  EventLoop loop;
  // The netlink sockets come first: entering --link-netns needs more than CAP_NET_ADMIN, so they
  // are opened before the drop to --run-as-user. Everything after it (the token, every byte from
  // the API server, IMDS and EC2) is read as that user.
  NlLinkManager links(loop, options.linkNetns);
  const bool linkEvents = options.enableEniManager && options.manageLinks;
  if (linkEvents && !netlinkOpened({links.open()})) return kExitFailure;
  if (!applyRunAsUser(options)) return kExitFailure;
  const auto config = loadKubeConfig(options);
  if (!config) return kExitFailure;

  BaseAdapters base;
  // The signal handler and the health server come next: an agent that waits for IMDS is alive
  // (/healthz) and says why it is not ready (/readyz), and SIGTERM still stops it.
  Stopping stopping(loop);
  auto servers = Servers::startHealth(options);
  if (!servers) return kExitFailure;
  const RegionLookup region = options.enableTagger || options.enableEniManager
                                  ? lookUpRegion(options.region, loop, base, servers->health.get())
                                  : RegionLookup{options.region};
  if (!region.region) return region.exitCode;
  Ec2Adapters aws(options, base, *region.region);

  KubeAdapters kube(loop, *config, options);
  Reconcilers core(options, loop, base, aws, kube.writes, links);
  if (linkEvents && !watchLinks(links, core.linkReconciler)) return kExitFailure;
  NodeView view(kube.writes, loop, options.nodeName, viewHandlers(options, core),
                options.enableEniManager, options.watchNamespace);
  int exitCode = 0;
  NodeLease lease(kube.client, loop, base.clock, leaseOptionsFor(options.nodeName, base.env),
                  leaseHandlers(loop, view, exitCode));
  Readiness readiness;
  addReadinessChecks(readiness, lease, core.stateStore, view, aws.ec2);
  AwsProbe awsProbe(aws.ec2, aws.ec2.health(), *core.awsWorker, aws.probeInterval);
  if (!servers->startMetrics(options)) return kExitFailure;

  logStarting(options, *config, *region.region, aws);
  lease.start();
  stopping.releaseLeaseFirst(lease, core.stateStore);
  Reporter reporter(loop, readiness, base, aws, awsProbe, *servers,
                    reportHooks(options, core, view, kube.client));
  reporter.start();
  loop.run();
  servers->stop();
  view.stop();
  core.lifecycle.stop();
  core.releaseWorkers.reset();
  core.awsWorker.reset();
  return exitCode;
}

}  // namespace eni
