// The composition root of `eni-agent run` in Kubernetes mode: it builds the real adapters (kube
// client, EC2, IMDS, netlink), wires them to the tagger and the ENI manager, serves health and
// metrics, and runs the loop. No logic lives here.
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/app/aws_metrics.h"
#include "agent/app/aws_probe.h"
#include "agent/app/commands.h"
#include "agent/app/imds_wait.h"
#include "agent/app/kube_setup.h"
#include "agent/base/event_loop.h"
#include "agent/base/executor.h"
#include "agent/base/heap_trimmer.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/signals.h"
#include "agent/enimanager/eni_manager.h"
#include "agent/enimanager/link_reconciler.h"
#include "agent/http/http_client.h"
#include "agent/kube/bounded_writes.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_view.h"
#include "agent/obs/health_server.h"
#include "agent/obs/metrics.h"
#include "agent/obs/readiness.h"
#include "agent/tagger/tagger.h"
#include "ec2/credentials.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "netlink/nl_link_manager.h"

int eni::runKubernetes(const eni::AgentOptions& options) {
  if (options.nodeName.empty()) {
    eni::logError(
        "no node name: set --node-name or NODE_NAME (the DaemonSet sets it from the "
        "downward API)");
    return kExitUsage;
  }
  auto config = eni::kubeConfigFor(options);
  if (!config) {
    eni::logError("cannot configure the Kubernetes client", {{"error", config.error().message}});
    return kExitFailure;
  }

  const auto env = eni::processEnv();
  eni::SystemClock clock;
  eni::RealSleeper sleeper;
  const eni::ImdsConfig imdsConfig = eni::imdsConfigFromEnv(env);
  eni::CurlImds imds(imdsConfig, clock, sleeper);

  // The loop, the signal handler and the health server come first: an agent that waits for IMDS
  // is alive (/healthz) and says why it is not ready (/readyz), and SIGTERM still stops it.
  eni::EventLoop loop;
  eni::SignalWatcher signals(loop, {SIGTERM, SIGINT}, [&loop](int signal) {
    eni::logInfo("stopping", {{"signal", signal}});
    loop.stop();
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

  eni::TaggerOptions taggerOptions;
  taggerOptions.nodeName = options.nodeName;
  taggerOptions.annotationKey = options.annotationKey;
  taggerOptions.tagNamespace = eni::TagNamespace{options.tagNamespace};
  taggerOptions.subnetIds = options.subnetIds;
  taggerOptions.allowSharedEniTagging = options.allowSharedEniTagging;
  taggerOptions.dryRun = options.dryRun;
  taggerOptions.resyncInterval = options.resyncInterval;
  eni::Tagger tagger(kube, ec2, imds, loop, *awsWorker, clock, taggerOptions);

  eni::NlLinkManager links(loop, options.linkNetns);
  eni::LinkReconciler reconciler(links, clock);
  eni::EniManagerOptions managerOptions;
  managerOptions.nodeName = options.nodeName;
  managerOptions.dryRun = options.dryRun;
  managerOptions.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");
  managerOptions.onAttachments = [&tagger](const std::vector<eni::AttachmentRecord>& a,
                                           const std::vector<std::string>& unowned,
                                           const std::vector<std::string>& creating) {
    tagger.setAttachments(a, unowned, creating);
  };
  managerOptions.recordCreating = [&tagger](std::vector<std::string> creating,
                                            std::function<void(bool)> done) {
    tagger.recordCreating(std::move(creating), std::move(done));
  };
  eni::EniManager manager(kube, ec2, imds, loop, *awsWorker, sleeper,
                          options.manageLinks ? &reconciler : nullptr, managerOptions);
  if (options.enableEniManager && options.manageLinks) {
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
    tagger.onNode(type, object);  // it also loads and keeps the node state for the ENI manager
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
  eni::Readiness readiness;
  readiness.addCheck("kubernetes", [&view] { return view.waitingFor(); });
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
  view.start();
  bool wasReady = false;
  std::string lastReason;
  // Freed heap goes back to the kernel after bursts (a relist, a pod churn); see HeapTrimmer.
  eni::HeapTrimmer heapTrimmer;
  std::function<void()> report = [&] {
    heapTrimmer.tick();
    awsProbe.tick();
    const std::string reason = readiness.reasons();
    if (*health) {
      (*health)->heartbeat();
      (*health)->setReady(reason.empty(), reason);
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
  view.stop();
  awsWorker.reset();
  return 0;
}
