#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/app/aws_probe.h"
#include "agent/base/clock.h"
#include "agent/base/env.h"
#include "agent/base/event_loop.h"
#include "agent/base/heap_trimmer.h"
#include "agent/base/timer.h"
#include "agent/config/options.h"
#include "agent/eni/link_reconciler.h"
#include "agent/obs/health_server.h"
#include "agent/obs/metrics.h"
#include "agent/obs/readiness.h"
#include "ec2/credentials.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "netlink/link_manager.h"

// Wiring that both run modes share: the first adapters, the region, the EC2 client, the servers
// and the once-a-second report. Loop thread only.
namespace eni {

/// The process environment, the clock, the sleeper and IMDS: what the region lookup needs.
struct BaseAdapters {
  BaseAdapters();
  const EnvLookup env;
  SystemClock clock;
  RealSleeper sleeper;
  const ImdsConfig imdsConfig;
  CurlImds imds;
};

/// The region of --region or AWS_REGION (`flagged`), else IMDS's, waited for (waitForRegion).
/// Without one, `exitCode` is the command's exit code: kExitFailure when IMDS is disabled (logged),
/// 0 when a signal stopped the wait. `beforeWaiting` runs when it comes to waiting for IMDS.
struct RegionLookup {
  std::optional<std::string> region;
  int exitCode = 0;
};
RegionLookup lookUpRegion(const std::string& flagged, EventLoop& loop, BaseAdapters& base,
                          HealthServer* health, const std::function<void()>& beforeWaiting = {});

/// The EC2 side, once the region is known: the credential chain and the client.
struct Ec2Adapters {
  Ec2Adapters(const AgentOptions& options, BaseAdapters& base, const std::string& region);
  DefaultCredentialChain credentials;
  const Duration probeInterval;  // AwsProbe's, and the client's refresh of refused credentials
  const Ec2ClientConfig config;
  CurlEc2Client ec2;
};

/// Hands link events to `reconciler`; logs why it cannot and fails.
[[nodiscard]] bool watchLinks(LinkManager& links, LinkReconciler& reconciler);

/// The health (/healthz, /readyz) and metrics servers. Either pointer is null when its address
/// turns it off. Each start logs why its server cannot listen and fails.
struct Servers {
  static std::optional<Servers> startHealth(const AgentOptions& options);
  [[nodiscard]] bool startMetrics(const AgentOptions& options);
  /// Stops both at once, woken: civetweb would otherwise wait out its 2 s poll, one server after
  /// the other.
  void stop();
  std::unique_ptr<HealthServer> health;
  std::unique_ptr<MetricsServer> metrics;
};

/// Once a second: gives freed heap back (HeapTrimmer), probes AWS while it refuses the credentials
/// (AwsProbe), hands the readiness report to `onReadiness`, heartbeats /healthz, publishes
/// /readyz, and publishes the AWS metrics plus what `addMetrics` adds.
class Reporter {
 public:
  struct Hooks {
    std::function<void(const ReadinessReport&)> onReadiness;
    std::function<void(MetricsSnapshot&)> addMetrics;
  };

  Reporter(Scheduler& scheduler, Readiness& readiness, const BaseAdapters& base,
           const Ec2Adapters& aws, AwsProbe& awsProbe, Servers& servers, Hooks hooks);
  /// The first report comes a second from now.
  void start() { timer_.enable(kInterval); }

 private:
  static constexpr Duration kInterval{1000};
  void report();

  Readiness& readiness_;
  const BaseAdapters& base_;
  const Ec2Adapters& aws_;
  AwsProbe& awsProbe_;
  Servers& servers_;
  Hooks hooks_;
  HeapTrimmer heapTrimmer_;  // after bursts (a relist, a pod churn); see HeapTrimmer
  Timer timer_;
};

}  // namespace eni
