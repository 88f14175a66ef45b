// The composition root of `eni-agent run --mode host` (systemd on EC2 without Kubernetes): the
// state-directory lock, host.json, state.json, the real adapters (EC2, IMDS, netlink), the host
// reconciler, SIGHUP reloads, sd_notify and the health and metrics servers. No logic lives here.
#include <signal.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/app/aws_metrics.h"
#include "agent/app/aws_probe.h"
#include "agent/app/commands.h"
#include "agent/app/imds_wait.h"
#include "agent/app/run_as_user.h"
#include "agent/base/env.h"
#include "agent/base/event_loop.h"
#include "agent/base/executor.h"
#include "agent/base/heap_trimmer.h"
#include "agent/base/log.h"
#include "agent/base/signals.h"
#include "agent/base/worker_pool.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/host/host_addressing.h"
#include "agent/host/host_config.h"
#include "agent/host/host_reconciler.h"
#include "agent/obs/health_server.h"
#include "agent/obs/journald.h"
#include "agent/obs/metrics.h"
#include "agent/obs/readiness.h"
#include "agent/obs/systemd_notify.h"
#include "agent/state/file_state_store.h"
#include "ec2/credentials.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "netlink/address_manager.h"
#include "netlink/nl_link_manager.h"

namespace {

std::string statusLine(const eni::HostPassReport& r) {
  std::string s = std::to_string(r.interfaces) + "/" + std::to_string(r.wanted) +
                  " interfaces attached, " + std::to_string(r.enis) + " ENIs tagged";
  if (!r.problems.empty()) {
    s += "; " + std::to_string(r.problems.size()) + " problem(s): " + r.problems.front();
  }
  if (s.size() > 200) s = s.substr(0, 197) + "...";
  return s;
}

// What the host agent tells systemd: READY=1 the first time every readiness check passes (the
// first full reconcile, credentials AWS accepts), and STATUS= with the last pass's summary,
// prefixed by why the agent is not ready while it is not. One log line per readiness change.
class HostNotifications {
 public:
  explicit HostNotifications(eni::SystemdNotifier& notifier) : notifier_(notifier) {}

  void pass(std::string status, const std::string& reason) {
    status_ = std::move(status);
    if (reason != reason_) {
      readiness(reason);
      return;
    }
    notifier_.status(text());
  }

  void readiness(const std::string& reason) {
    if (reason == reason_) return;
    reason_ = reason;
    // reason_ starts as "starting", so the first empty reason always lands here.
    if (reason.empty() && !readySent_) {
      sendReady();
      return;
    }
    if (reason.empty()) {
      eni::logInfo("ready again", {{"status", status_}});
    } else {
      eni::logWarn("not ready, will retry", {{"reason", reason}});
    }
    notifier_.status(text());
  }

 private:
  void sendReady() {
    readySent_ = true;
    eni::logInfo("first full reconcile done", {{"status", status_}});
    notifier_.ready(status_);
  }
  std::string text() const {
    return reason_.empty() ? status_ : "not ready: " + reason_ + "; " + status_;
  }

  eni::SystemdNotifier& notifier_;
  std::string status_;
  std::string reason_ = "starting";
  bool readySent_ = false;
};

}  // namespace

int eni::runHost(const eni::AgentOptions& options) {
  if (eni::stderrIsJournal()) eni::useJournald();  // structured fields instead of lines
  eni::EventLoop loop;
  // The netlink sockets come first: entering --link-netns needs more than CAP_NET_ADMIN, so they
  // are opened before the drop to --run-as-user. Everything after it (the lock, host.json, the
  // state file, every byte from IMDS and EC2) is read and written as that user.
  eni::NlLinkManager links(loop, options.linkNetns);
  eni::NlAddressManager addresses(options.linkNetns);
  eni::NlAddressWatch addressWatch(loop, options.linkNetns);
  if (options.manageLinks &&
      !eni::netlinkOpened({links.open(), addresses.open(), addressWatch.open()})) {
    return kExitFailure;
  }
  if (!eni::applyRunAsUser(options)) return kExitFailure;
  auto lock = eni::StateDirLock::acquire(options.stateDir);
  if (!lock) {
    eni::logError("cannot lock the state directory", {{"error", lock.error().message}});
    return kExitFailure;
  }
  auto config = eni::loadHostConfig(options.configPath);
  if (!config) {
    eni::logError("invalid host config, not starting; fix it and start again",
                  {{"config", options.configPath}, {"error", config.error().message}});
    return kExitFailure;
  }
  eni::FileStateStore store(options.stateDir);
  auto saved = store.load();
  if (!saved) {
    eni::logError("cannot read the state file", {{"error", saved.error().describe()}});
    return kExitFailure;
  }
  if (!store.movedAside().empty()) {
    eni::logWarn("the state file was unreadable; moved it aside and starting cold",
                 {{"moved_to", store.movedAside()}, {"reason", store.movedAsideReason()}});
  }

  const auto env = eni::processEnv();
  eni::SystemClock clock;
  eni::RealSleeper sleeper;
  const eni::ImdsConfig imdsConfig = eni::imdsConfigFromEnv(env);
  eni::CurlImds imds(imdsConfig, clock, sleeper);
  eni::SystemdNotifier notifier;
  // Signals are blocked for the whole process, so the watcher comes before any thread starts
  // (the AWS worker, civetweb); SIGHUP hands the new config to the reconciler made below.
  std::function<void(eni::HostConfig)> onConfig;
  eni::SignalWatcher signals(loop, {SIGTERM, SIGINT, SIGHUP}, [&](int signal) {
    if (signal != SIGHUP) {
      eni::logInfo("stopping", {{"signal", signal}});
      notifier.stopping("stopping on signal " + std::to_string(signal));
      loop.stop();
      return;
    }
    auto reloaded = eni::loadHostConfig(options.configPath);
    if (!reloaded) {
      eni::logError("new host config rejected, the old one stays in force",
                    {{"config", options.configPath}, {"error", reloaded.error().message}});
      notifier.status("new config rejected, the old one stays in force: " +
                      reloaded.error().message);
      return;
    }
    eni::logInfo("host config reloaded", {{"config", options.configPath},
                                          {"interfaces", reloaded->interfaces.size()},
                                          {"tags", reloaded->tags.size()}});
    if (onConfig) {
      onConfig(std::move(*reloaded));
    } else {
      *config = std::move(*reloaded);  // still waiting for IMDS: start with this one
    }
  });
  // Health and the watchdog come before the wait for IMDS: an agent that waits is alive and says
  // why it is not ready, and systemd does not kill it.
  auto health = eni::HealthServer::start(options.healthProbeBindAddress);
  if (!health) {
    eni::logError("cannot serve health probes", {{"error", health.error().message}});
    return kExitFailure;
  }
  // WATCHDOG=1 from the loop at half of WATCHDOG_USEC. The timer's function outlives this block,
  // so it lives at function scope.
  std::function<void()> kick;
  if (auto interval = notifier.watchdogInterval()) {
    kick = [&, interval] {
      notifier.watchdog();
      loop.runAfter(*interval, kick);
    };
    loop.runAfter(*interval, kick);
  }
  std::string region = options.region;
  if (region.empty()) {
    if (imdsConfig.disabled) {
      eni::logError("cannot find the AWS region: set --region or AWS_REGION",
                    {{"error", "IMDS is disabled by AWS_EC2_METADATA_DISABLED"}});
      return kExitFailure;
    }
    notifier.status("waiting for IMDS to read the region");
    auto resolved = eni::waitForRegion(loop, imds, health->get(), imdsConfig.endpoint);
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

  eni::LinkReconciler linkReconciler(links, clock);
  // Joined before the reconciler goes (see the end): a pass still running on it uses it.
  auto awsWorker = std::make_unique<eni::WorkerThread>(loop);
  // ENI releases wait for detaches on threads of their own, never on the AWS worker.
  eni::EniLifecycleOptions lifecycleOptions;
  lifecycleOptions.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");
  auto releaseWorkers =
      std::make_unique<eni::WorkerPool>(loop, lifecycleOptions.releaseConcurrency);
  eni::EniLifecycle lifecycle(ec2, *releaseWorkers, sleeper, lifecycleOptions);
  eni::HostReconcilerOptions hostOptions;
  hostOptions.dryRun = options.dryRun;
  hostOptions.resyncInterval = options.resyncInterval;
  eni::HostReconciler host(ec2, imds, loop, *awsWorker, lifecycle, store,
                           options.manageLinks ? &linkReconciler : nullptr, hostOptions);

  onConfig = [&host](eni::HostConfig c) { host.setConfig(std::move(c)); };
  eni::HostAddressing addressing(addresses, linkReconciler);
  // Address events are subscribed to only once host.json asks for addresses or routing.
  if (options.manageLinks) {
    host.setOnLinks([&](const std::vector<eni::HostLink>& l) {
      if (!addressWatch.started() && eni::HostAddressing::wantsAddresses(l)) {
        auto watching = addressWatch.start([&](int ifindex) {
          addressing.forget(ifindex);
          addressing.update(host.hostLinks());
        });
        if (!watching) {
          eni::logWarn(
              "cannot watch address events, ignoring: an address or rule someone deletes "
              "comes back only when its link reappears or the agent restarts",
              {{"error", watching.error().message}});
        }
      }
      addressing.update(l);
    });
  }

  if (options.manageLinks) {
    if (auto started = links.start([&](const eni::LinkEvent& e) { linkReconciler.onEvent(e); });
        !started) {
      eni::logError("cannot watch network links", {{"error", started.error().message}});
      return kExitFailure;
    }
  }

  bool reconciled = false;
  eni::Readiness readiness;
  readiness.addCheck("host", [&reconciled] {
    return reconciled ? "" : "FirstReconcile: waiting for the first full reconcile";
  });
  readiness.addCheck("aws", [&ec2] { return ec2.health().problem(); });
  eni::AwsProbe awsProbe(ec2, ec2.health(), *awsWorker, probeInterval);
  // READY=1 once every check passes; STATUS= carries the last pass and, while the agent is not
  // ready, why (systemd has no way back from READY=1, so STATUS= is what says it).
  HostNotifications notifications(notifier);
  host.setOnPass([&](const eni::HostPassReport& report) {
    reconciled = reconciled || report.complete;
    notifications.pass(statusLine(report), readiness.reasons());
  });
  auto metrics = eni::MetricsServer::start(options.metricsBindAddress);
  if (!metrics) {
    eni::logError("cannot serve metrics", {{"error", metrics.error().message}});
    return kExitFailure;
  }

  eni::logInfo("starting", {{"mode", "host"},
                            {"config", options.configPath},
                            {"state_dir", options.stateDir},
                            {"warm_start", saved->has_value() ? "true" : "false"},
                            {"region", region},
                            {"ec2_endpoint", ec2Config.endpoint},
                            {"credentials", credentials.source()},
                            {"dry_run", options.dryRun ? "true" : "false"},
                            {"link_netns", options.linkNetns.empty() ? "own" : options.linkNetns}});
  host.start(std::move(*config));

  // Freed heap goes back to the kernel after bursts (a relist, a pod churn); see HeapTrimmer.
  eni::HeapTrimmer heapTrimmer;
  std::function<void()> report = [&] {
    heapTrimmer.tick();
    awsProbe.tick();
    const eni::ReadinessReport readinessNow = readiness.report();
    notifications.readiness(readinessNow.detail);
    if (*health) {
      (*health)->heartbeat();
      (*health)->setReady(readinessNow);
    }
    if (*metrics) {
      eni::MetricsSnapshot m;
      eni::addAwsMetrics(m, ec2, imds);
      m.linkConfigure = linkReconciler.latencyHistogram();
      m.managedEnis = host.state().attachments.size();
      m.reconcileErrors = host.passes() - host.completePasses();
      (*metrics)->publish(std::move(m));
    }
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
  lifecycle.stop();
  releaseWorkers.reset();
  awsWorker.reset();
  return 0;
}
