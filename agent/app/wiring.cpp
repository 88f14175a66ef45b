#include "agent/app/wiring.h"

#include <utility>
#include <vector>

#include "agent/app/aws_metrics.h"
#include "agent/app/commands.h"
#include "agent/app/imds_wait.h"
#include "agent/base/log.h"
#include "agent/obs/shutdown.h"

namespace eni {

BaseAdapters::BaseAdapters()
    : env(processEnv()), imdsConfig(imdsConfigFromEnv(env)), imds(imdsConfig, clock, sleeper) {}

RegionLookup lookUpRegion(const std::string& flagged, EventLoop& loop, BaseAdapters& base,
                          HealthServer* health, const std::function<void()>& beforeWaiting) {
  if (!flagged.empty()) return {flagged};
  if (base.imdsConfig.disabled) {
    logError("cannot find the AWS region: set --region or AWS_REGION",
             {{"error", "IMDS is disabled by AWS_EC2_METADATA_DISABLED"}});
    return {std::nullopt, kExitFailure};
  }
  if (beforeWaiting) beforeWaiting();
  return {waitForRegion(loop, base.imds, health, base.imdsConfig.endpoint), 0};
}

namespace {

Ec2ClientConfig ec2ConfigFor(const AgentOptions& options, const EnvLookup& env,
                             const std::string& region, Duration probeInterval) {
  Ec2ClientConfig config;
  config.region = region;
  config.endpoint = ec2Endpoint(env, region);
  config.qps = options.awsRateLimitQps;
  config.burst = options.awsRateLimitBurst;
  config.refusedCredentialsRefresh = probeInterval;
  return config;
}

}  // namespace

Ec2Adapters::Ec2Adapters(const AgentOptions& options, BaseAdapters& base, const std::string& region)
    : credentials(base.env, region, &base.imds),
      probeInterval(awsProbeInterval(base.env)),
      config(ec2ConfigFor(options, base.env, region, probeInterval)),
      ec2(config, credentials, base.clock, base.sleeper) {}

bool watchLinks(LinkManager& links, LinkReconciler& reconciler) {
  auto started = links.start([&reconciler](const LinkEvent& e) { reconciler.onEvent(e); });
  if (!started) logError("cannot watch network links", {{"error", started.error().message}});
  return started.has_value();
}

std::optional<Servers> Servers::startHealth(const AgentOptions& options) {
  auto health = HealthServer::start(options.healthProbeBindAddress);
  if (!health) {
    logError("cannot serve health probes", {{"error", health.error().message}});
    return std::nullopt;
  }
  Servers servers;
  servers.health = std::move(*health);
  return servers;
}

bool Servers::startMetrics(const AgentOptions& options) {
  auto started = MetricsServer::start(options.metricsBindAddress);
  if (!started) {
    logError("cannot serve metrics", {{"error", started.error().message}});
    return false;
  }
  metrics = std::move(*started);
  return true;
}

void Servers::stop() {
  std::vector<Stoppable> servers;
  if (health) servers.push_back(health->stopper());
  if (metrics) servers.push_back(metrics->stopper());
  stopTogether(std::move(servers));
}

Reporter::Reporter(Scheduler& scheduler, Readiness& readiness, const BaseAdapters& base,
                   const Ec2Adapters& aws, AwsProbe& awsProbe, Servers& servers, Hooks hooks)
    : readiness_(readiness),
      base_(base),
      aws_(aws),
      awsProbe_(awsProbe),
      servers_(servers),
      hooks_(std::move(hooks)),
      timer_(scheduler, [this] {
        report();
        timer_.enable(kInterval);
      }) {}

void Reporter::report() {
  heapTrimmer_.tick();
  awsProbe_.tick();
  const ReadinessReport readiness = readiness_.report();
  if (hooks_.onReadiness) hooks_.onReadiness(readiness);
  if (servers_.health) {
    servers_.health->heartbeat();
    servers_.health->setReady(readiness);
  }
  if (servers_.metrics) {
    MetricsSnapshot m;
    addAwsMetrics(m, aws_.ec2, base_.imds);
    if (hooks_.addMetrics) hooks_.addMetrics(m);
    servers_.metrics->publish(std::move(m));
  }
}

}  // namespace eni
