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

#include "agent/app/aws_metrics.h"
#include "agent/app/aws_probe.h"
#include "agent/app/commands.h"
#include "agent/app/imds_wait.h"
#include "agent/app/kube_setup.h"
#include "agent/app/run_as_user.h"
#include "agent/base/event_loop.h"
#include "agent/base/executor.h"
#include "agent/base/heap_trimmer.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/signals.h"
#include "agent/base/worker_pool.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/enimanager/eni_manager.h"
#include "agent/http/http_client.h"
#include "agent/kube/bounded_writes.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_lease.h"
#include "agent/kube/node_view.h"
#include "agent/obs/health_server.h"
#include "agent/obs/metrics.h"
#include "agent/obs/readiness.h"
#include "agent/state/annotation_state_store.h"
#include "agent/tagger/tagger.h"
#include "ec2/credentials.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "netlink/nl_link_manager.h"

namespace {

eni::NodeLeaseOptions leaseOptionsFor(const std::string& nodeName, const eni::EnvLookup& env) {
  eni::NodeLeaseOptions o;
  o.ns = env("POD_NAMESPACE").value_or("");
  if (o.ns.empty()) o.ns = eni::kDefaultLeaseNamespace;
  o.name = eni::leaseNameFor(nodeName);
  o.identity = eni::leaseIdentity(env("POD_NAME").value_or(""));
  return o;
}

// A clean stop hands the lease over (a rolling update's next pod takes it at its next read, not
// after the lease duration), bounded: an API server that does not answer does not hold the stop.
// The loop stops only then, so the tagger and the ENI manager run until the release is written.
void releaseThenStop(eni::EventLoop& loop, eni::NodeLease& lease) {
  const eni::TimerId bound = loop.runAfter(eni::Duration(3000), [&loop] {
    eni::logWarn("the node lease was not released in time; the next agent waits for it to expire");
    loop.stop();
  });
  lease.release([&loop, bound](eni::Result<void> released) {
    if (!released) {
      eni::logWarn("cannot release the node lease; the next agent waits for it to expire",
                   {{"error", released.error().describe()}});
    }
    loop.cancel(bound);
    loop.stop();
  });
}

}  // namespace

int eni::runKubernetes(const eni::AgentOptions& options) {
  if (options.nodeName.empty()) {
    eni::logError(
        "no node name: set --node-name or NODE_NAME (the DaemonSet sets it from the "
        "downward API)");
    return kExitUsage;
  }
  eni::EventLoop loop;
  // The netlink sockets come first: entering --link-netns needs more than CAP_NET_ADMIN, so they
  // are opened before the drop to --run-as-user. Everything after it (the token, every byte from
  // the API server, IMDS and EC2) is read as that user.
  eni::NlLinkManager links(loop, options.linkNetns);
  const bool watchLinks = options.enableEniManager && options.manageLinks;
  if (watchLinks && !eni::netlinkOpened({links.open()})) return kExitFailure;
  if (!eni::applyRunAsUser(options)) return kExitFailure;
  auto config = eni::kubeConfigFor(options);
  if (!config) {
    std::string error = config.error().message;
    if (options.runAsUser && config.error().code == eni::ErrorCode::Permission) {
      error += " (read as --run-as-user " + eni::toString(*options.runAsUser) +
               "; in the DaemonSet the pod's securityContext.fsGroup must be its group, so that "
               "the kubelet makes the token readable to it)";
    }
    eni::logError("cannot configure the Kubernetes client", {{"error", error}});
    return kExitFailure;
  }

  const auto env = eni::processEnv();
  eni::SystemClock clock;
  eni::RealSleeper sleeper;
  const eni::ImdsConfig imdsConfig = eni::imdsConfigFromEnv(env);
  eni::CurlImds imds(imdsConfig, clock, sleeper);

  // The signal handler and the health server come next: an agent that waits for IMDS is alive
  // (/healthz) and says why it is not ready (/readyz), and SIGTERM still stops it.
  // The first signal runs `stop` (once the lease is held: give it up, then stop); a second one
  // stops at once.
  std::function<void()> stop = [&loop] { loop.stop(); };
  eni::SignalWatcher signals(loop, {SIGTERM, SIGINT}, [&](int signal) {
    eni::logInfo("stopping", {{"signal", signal}});
    std::exchange(stop, [&loop] { loop.stop(); })();
  });
  auto health = eni::HealthServer::start(options.healthProbeBindAddress);
  if (!health) {
    eni::logError("cannot serve health probes", {{"error", health.error().message}});
    return kExitFailure;
  }

  std::string region = options.region;
  if (region.empty() && (options.enableTagger || options.enableEniManager)) {
    if (imdsConfig.disabled) {
      eni::logError("cannot find the AWS region: set --region or AWS_REGION",
                    {{"error", "IMDS is disabled by AWS_EC2_METADATA_DISABLED"}});
      return kExitFailure;
    }
    auto resolved = waitForRegion(loop, imds, health->get(), imdsConfig.endpoint);
    if (!resolved) return 0;  // stopped by a signal while waiting
    region = *resolved;
  }
  eni::DefaultCredentialChain credentials(env, region, &imds);
  eni::Ec2ClientConfig ec2Config;
  ec2Config.region = region;
  ec2Config.endpoint = eni::ec2Endpoint(env, region);
  ec2Config.qps = options.awsRateLimitQps;
  ec2Config.burst = options.awsRateLimitBurst;
  const eni::Duration probeInterval = eni::awsProbeInterval(env);
  ec2Config.refusedCredentialsRefresh = probeInterval;
  eni::CurlEc2Client ec2(ec2Config, credentials, clock, sleeper);

  eni::HttpClient http(loop);
  eni::KubeClientOptions kubeOptions;
  kubeOptions.watchIdleTimeout = options.watchIdleTimeout;
  eni::CurlKubeClient kubeClient(http, *config, kubeOptions);
  // At most 32 writes in flight: 110 pods synced at once are 330 writes, well past the API
  // server's in-flight limit (429s that cost a retry each).
  eni::BoundedWrites kube(kubeClient, 32);
  // Joined before the tagger and the ENI manager go (see the end): a pass still running on it uses
  // them.
  auto awsWorker = std::make_unique<eni::WorkerThread>(loop);
  // ENI releases wait for detaches on threads of their own, never on the AWS worker that tags.
  eni::EniLifecycleOptions lifecycleOptions;
  lifecycleOptions.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");
  auto releaseWorkers =
      std::make_unique<eni::WorkerPool>(loop, lifecycleOptions.releaseConcurrency);
  eni::EniLifecycle lifecycle(ec2, *releaseWorkers, sleeper, lifecycleOptions);

  eni::TaggerOptions taggerOptions;
  taggerOptions.nodeName = options.nodeName;
  taggerOptions.annotationKey = options.annotationKey;
  taggerOptions.tagNamespace = eni::TagNamespace{options.tagNamespace};
  taggerOptions.subnetIds = options.subnetIds;
  taggerOptions.allowSharedEniTagging = options.allowSharedEniTagging;
  taggerOptions.dryRun = options.dryRun;
  taggerOptions.resyncInterval = options.resyncInterval;
  // The node state's one keeper: the tagger and the ENI manager each change their slice of it.
  eni::AnnotationStateStore stateStore(kube, loop, {options.nodeName});
  eni::Tagger tagger(kube, ec2, imds, loop, *awsWorker, clock, stateStore, taggerOptions);

  eni::LinkReconciler reconciler(links, clock);
  eni::EniManagerOptions managerOptions;
  managerOptions.nodeName = options.nodeName;
  managerOptions.dryRun = options.dryRun;
  managerOptions.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");
  eni::EniManager manager(kube, ec2, imds, loop, *awsWorker, lifecycle, stateStore,
                          options.manageLinks ? &reconciler : nullptr, managerOptions);
  if (watchLinks) {
    if (auto started = links.start([&](const eni::LinkEvent& e) { reconciler.onEvent(e); });
        !started) {
      eni::logError("cannot watch network links", {{"error", started.error().message}});
      return kExitFailure;
    }
  }

  auto onPod = [&](eni::ChangeType type, const Json::Value& object) {
    if (options.enableTagger) tagger.onPod(type, object);
  };
  auto onNode = [&](eni::ChangeType type, const Json::Value& object) {
    stateStore.onNode(type, object);
    if (options.enableEniManager) manager.onNode(type, object);
  };
  auto onNodeEni = [&](eni::ChangeType type, const Json::Value& object) {
    if (options.enableEniManager) manager.onNodeEni(type, object);
  };
  eni::NodeView view(kube, loop, options.nodeName,
                     {onPod, onNode, onNodeEni,
                      [&] {
                        if (options.enableTagger) tagger.start();
                        if (options.enableEniManager) manager.start();
                      }},
                     options.enableEniManager);
  // One agent per node: nothing is read for the tagger and the ENI manager, so nothing written,
  // before this agent holds the node's lease (docs/operations.md, "One agent per node").
  int exitCode = 0;
  eni::NodeLease lease(kubeClient, loop, clock, leaseOptionsFor(options.nodeName, env),
                       {[&view] { view.start(); },
                        [&](const std::string& why) {
                          eni::logError("lost the node lease, stopping", {{"error", why}});
                          exitCode = kExitFailure;
                          loop.stop();
                        }});
  eni::Readiness readiness;
  readiness.addCheck("lease", [&lease] { return lease.notReadyReason(); });
  // A rollback below the version that wrote the node state: this agent may not keep it.
  readiness.addCheck("state", [&stateStore] { return stateStore.problem(); });
  // Until the lease is held the view has not started, and the lease check says why.
  readiness.addCheck("kubernetes", [&view, &lease] {
    return !lease.held() || view.live() ? "" : view.waitingFor();
  });
  readiness.addCheck("aws", [&ec2] { return ec2.health().problem(); });
  eni::AwsProbe awsProbe(ec2, ec2.health(), *awsWorker, probeInterval);

  auto metrics = eni::MetricsServer::start(options.metricsBindAddress);
  if (!metrics) {
    eni::logError("cannot serve metrics", {{"error", metrics.error().message}});
    return kExitFailure;
  }

  eni::logInfo("starting", {{"node", options.nodeName},
                            {"api_server", config->server},
                            {"region", region},
                            {"ec2_endpoint", ec2Config.endpoint},
                            {"credentials", credentials.source()},
                            {"dry_run", options.dryRun ? "true" : "false"},
                            {"link_netns", options.linkNetns.empty() ? "own" : options.linkNetns}});
  lease.start();
  stop = [&] { releaseThenStop(loop, lease); };
  bool wasReady = false;
  std::string lastReason;
  // Freed heap goes back to the kernel after bursts (a relist, a pod churn); see HeapTrimmer.
  eni::HeapTrimmer heapTrimmer;
  std::function<void()> report = [&] {
    heapTrimmer.tick();
    awsProbe.tick();
    const eni::ReadinessReport readinessNow = readiness.report();
    const std::string& reason = readinessNow.detail;
    if (*health) {
      (*health)->heartbeat();
      (*health)->setReady(readinessNow);
    }
    if (*metrics) {
      eni::MetricsSnapshot m;
      eni::addAwsMetrics(m, ec2, imds);
      for (const auto& [source, n] : tagger.counters().resolveSources()) {
        m.resolveSources[std::string(eni::toString(source))] = n;
      }
      for (const auto& [result, n] : tagger.counters().syncResults()) {
        m.podTagSync[std::string(eni::toString(result))] = n;
      }
      m.tagSync = tagger.counters().latencyHistogram();
      m.linkConfigure = reconciler.latencyHistogram();
      m.managedEnis = manager.attachments().size();
      m.reconcileErrors = tagger.counters().reconcileErrors();
      m.watchRestarts = view.watchRestarts();
      (*metrics)->publish(std::move(m));
    }
    if (reason.empty() && !wasReady) eni::logInfo("ready", {{"node", options.nodeName}});
    if (!reason.empty() && reason != lastReason)
      eni::logWarn("not ready, will retry", {{"reason", reason}});
    wasReady = reason.empty();
    lastReason = reason;
    loop.runAfter(eni::Duration(1000), report);
  };
  loop.runAfter(eni::Duration(1000), report);
  loop.run();
  // Both servers at once, woken: civetweb would otherwise wait out its 2 s poll, one server
  // after the other.
  std::vector<eni::Stoppable> servers;
  if (*health) servers.push_back((*health)->stopper());
  if (*metrics) servers.push_back((*metrics)->stopper());
  eni::stopTogether(std::move(servers));
  view.stop();
  lifecycle.stop();
  releaseWorkers.reset();
  awsWorker.reset();
  return exitCode;
}
