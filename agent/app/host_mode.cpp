// The composition root of `eni-agent run --mode host` (systemd on EC2 without Kubernetes): the
// state-directory lock, host.json, state.json, the real adapters (EC2, IMDS, netlink), the host
// reconciler, SIGHUP reloads, sd_notify and the health and metrics servers. No logic lives here.
#include <signal.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/app/aws_probe.h"
#include "agent/app/commands.h"
#include "agent/app/run_as_user.h"
#include "agent/app/wiring.h"
#include "agent/base/env.h"
#include "agent/base/event_loop.h"
#include "agent/base/log.h"
#include "agent/base/signals.h"
#include "agent/base/timer.h"
#include "agent/base/worker_pool.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/host/host_addressing.h"
#include "agent/host/host_config.h"
#include "agent/host/host_reconciler.h"
#include "agent/obs/journald.h"
#include "agent/obs/readiness.h"
#include "agent/obs/systemd_notify.h"
#include "agent/state/file_state_store.h"
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

// The state directory, locked for this process, host.json and the saved node state. open() logs
// what is wrong and fails; the agent then does not start.
struct HostFiles {
  explicit HostFiles(const eni::AgentOptions& options) : store(options.stateDir) {}

  [[nodiscard]] bool open(const eni::AgentOptions& options) {
    auto locked = eni::StateDirLock::acquire(options.stateDir);
    if (!locked) {
      eni::logError("cannot lock the state directory", {{"error", locked.error().message}});
      return false;
    }
    lock = std::move(*locked);
    auto loaded = eni::loadHostConfig(options.configPath);
    if (!loaded) {
      eni::logError("invalid host config, not starting; fix it and start again",
                    {{"config", options.configPath}, {"error", loaded.error().message}});
      return false;
    }
    config = std::move(*loaded);
    auto state = store.load();
    if (!state) {
      eni::logError("cannot read the state file", {{"error", state.error().describe()}});
      return false;
    }
    saved = std::move(*state);
    if (!store.movedAside().empty()) {
      eni::logWarn("the state file was unreadable; moved it aside and starting cold",
                   {{"moved_to", store.movedAside()}, {"reason", store.movedAsideReason()}});
    }
    return true;
  }

  std::optional<eni::StateDirLock> lock;
  eni::HostConfig config;
  eni::FileStateStore store;
  std::optional<eni::NodeState> saved;  // nullopt: a cold start
};

// SIGTERM and SIGINT stop the agent. SIGHUP reloads host.json: a valid one goes to the reconciler
// or, while the agent still waits for IMDS, replaces the config it will start with.
class HostSignals {
 public:
  HostSignals(eni::EventLoop& loop, const eni::AgentOptions& options,
              eni::SystemdNotifier& notifier, eni::HostConfig& pending)
      : loop_(loop),
        options_(options),
        notifier_(notifier),
        pending_(pending),
        signals_(loop, {SIGTERM, SIGINT, SIGHUP}, [this](int signal) { onSignal(signal); }) {}

  void reloadInto(eni::HostReconciler& host) { host_ = &host; }

 private:
  void onSignal(int signal) {
    if (signal == SIGHUP) return reload();
    eni::logInfo("stopping", {{"signal", signal}});
    notifier_.stopping("stopping on signal " + std::to_string(signal));
    loop_.stop();
  }

  void reload() {
    auto reloaded = eni::loadHostConfig(options_.configPath);
    if (!reloaded) {
      eni::logError("new host config rejected, the old one stays in force",
                    {{"config", options_.configPath}, {"error", reloaded.error().message}});
      notifier_.status("new config rejected, the old one stays in force: " +
                       reloaded.error().message);
      return;
    }
    eni::logInfo("host config reloaded", {{"config", options_.configPath},
                                          {"interfaces", reloaded->interfaces.size()},
                                          {"tags", reloaded->tags.size()}});
    if (host_ != nullptr) {
      host_->setConfig(std::move(*reloaded));
    } else {
      pending_ = std::move(*reloaded);  // still waiting for IMDS: start with this one
    }
  }

  eni::EventLoop& loop_;
  const eni::AgentOptions& options_;
  eni::SystemdNotifier& notifier_;
  eni::HostConfig& pending_;
  eni::HostReconciler* host_ = nullptr;
  eni::SignalWatcher signals_;
};

// WATCHDOG=1 from the loop at half of WATCHDOG_USEC, when systemd asks for it.
class Watchdog {
 public:
  Watchdog(eni::Scheduler& scheduler, eni::SystemdNotifier& notifier)
      : notifier_(notifier), timer_(scheduler, [this] { kick(); }) {
    if (auto interval = notifier.watchdogInterval()) {
      interval_ = *interval;
      timer_.enable(interval_);
    }
  }

 private:
  void kick() {
    notifier_.watchdog();
    timer_.enable(interval_);
  }

  eni::SystemdNotifier& notifier_;
  eni::Duration interval_{0};
  eni::Timer timer_;
};

eni::HostReconcilerOptions hostOptionsFor(const eni::AgentOptions& options) {
  eni::HostReconcilerOptions o;
  o.dryRun = options.dryRun;
  o.resyncInterval = options.resyncInterval;
  return o;
}

eni::EniLifecycleOptions lifecycleOptionsFor(const eni::AgentOptions& options,
                                             const eni::EnvLookup& env) {
  eni::EniLifecycleOptions o;
  o.crashPoint = env("ENI_AGENT_CRASH_POINT").value_or("");
  o.releaseConcurrency = static_cast<std::size_t>(options.releaseConcurrency);
  // One Describe per poll interval, for as long as --detach-timeout says (rounded up).
  const auto interval = o.detachPollInterval.count();
  o.detachPolls = static_cast<int>((options.detachTimeout.count() + interval - 1) / interval);
  return o;
}

// The core: the host reconciler, the links it configures, its AWS worker, and the ENI lifecycle
// with the threads its releases wait on (never the AWS worker).
struct HostCore {
  HostCore(const eni::AgentOptions& options, eni::EventLoop& loop, eni::BaseAdapters& base,
           eni::Ec2Adapters& aws, eni::LinkManager& links, eni::NodeStateStore& store)
      : linkReconciler(links, base.clock),
        awsWorker(std::make_unique<eni::WorkerThread>(loop)),
        releaseWorkers(std::make_unique<eni::WorkerPool>(
            loop, lifecycleOptionsFor(options, base.env).releaseConcurrency)),
        lifecycle(aws.ec2, *releaseWorkers, base.sleeper, lifecycleOptionsFor(options, base.env)),
        host(aws.ec2, base.imds, loop, *awsWorker, lifecycle, store,
             options.manageLinks ? &linkReconciler : nullptr, hostOptionsFor(options)) {}
  // The threads are joined before the reconciler goes: a pass or a release still running on them
  // uses it.
  ~HostCore() {
    lifecycle.stop();
    releaseWorkers.reset();
    awsWorker.reset();
  }
  HostCore(const HostCore&) = delete;
  HostCore& operator=(const HostCore&) = delete;

  eni::LinkReconciler linkReconciler;
  std::unique_ptr<eni::WorkerThread> awsWorker;
  std::unique_ptr<eni::WorkerPool> releaseWorkers;
  eni::EniLifecycle lifecycle;
  eni::HostReconciler host;
};

// Addresses and routing of the attached interfaces. Address events are subscribed to only once
// host.json asks for addresses or routing.
void wireAddressing(eni::HostReconciler& host, eni::HostAddressing& addressing,
                    eni::NlAddressWatch& addressWatch) {
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

// READY=1 once every check passes; STATUS= carries the last pass and, while the agent is not
// ready, why (systemd has no way back from READY=1, so STATUS= is what says it).
void wireReadiness(eni::Readiness& readiness, eni::HostReconciler& host, eni::CurlEc2Client& ec2,
                   HostNotifications& notifications, bool& reconciled) {
  readiness.addCheck("host", [&reconciled] {
    return reconciled ? "" : "FirstReconcile: waiting for the first full reconcile";
  });
  readiness.addCheck("aws", [&ec2] { return ec2.health().problem(); });
  host.setOnPass([&](const eni::HostPassReport& report) {
    reconciled = reconciled || report.complete;
    notifications.pass(statusLine(report), readiness.reasons());
  });
}

eni::Reporter::Hooks reportHooks(HostNotifications& notifications, HostCore& core) {
  eni::Reporter::Hooks hooks;
  hooks.onReadiness = [&notifications](const eni::ReadinessReport& report) {
    notifications.readiness(report.detail);
  };
  hooks.addMetrics = [&core](eni::MetricsSnapshot& m) {
    m.linkConfigure = core.linkReconciler.latencyHistogram();
    m.managedEnis = core.host.state().attachments.size();
    m.reconcileErrors = core.host.passes() - core.host.completePasses();
  };
  return hooks;
}

void logStarting(const eni::AgentOptions& options, const HostFiles& files,
                 const std::string& region, const eni::Ec2Adapters& aws) {
  eni::logInfo("starting", {{"mode", "host"},
                            {"config", options.configPath},
                            {"state_dir", options.stateDir},
                            {"warm_start", files.saved.has_value() ? "true" : "false"},
                            {"region", region},
                            {"ec2_endpoint", aws.config.endpoint},
                            {"credentials", aws.credentials.source()},
                            {"dry_run", options.dryRun ? "true" : "false"},
                            {"link_netns", options.linkNetns.empty() ? "own" : options.linkNetns}});
}

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
  HostFiles files(options);
  if (!files.open(options)) return kExitFailure;

  eni::BaseAdapters base;
  eni::SystemdNotifier notifier;
  // Signals are blocked for the whole process, so the watcher comes before any thread starts
  // (the AWS worker, civetweb).
  HostSignals signals(loop, options, notifier, files.config);
  // Health and the watchdog come before the wait for IMDS: an agent that waits is alive and says
  // why it is not ready, and systemd does not kill it.
  auto servers = eni::Servers::startHealth(options);
  if (!servers) return kExitFailure;
  Watchdog watchdog(loop, notifier);
  const eni::RegionLookup region =
      eni::lookUpRegion(options.region, loop, base, servers->health.get(),
                        [&notifier] { notifier.status("waiting for IMDS to read the region"); });
  if (!region.region) return region.exitCode;
  eni::Ec2Adapters aws(options, base, *region.region);

  HostCore core(options, loop, base, aws, links, files.store);
  signals.reloadInto(core.host);
  eni::HostAddressing addressing(addresses, core.linkReconciler);
  if (options.manageLinks) wireAddressing(core.host, addressing, addressWatch);
  if (options.manageLinks && !eni::watchLinks(links, core.linkReconciler)) return kExitFailure;
  bool reconciled = false;
  eni::Readiness readiness;
  eni::AwsProbe awsProbe(aws.ec2, aws.ec2.health(), *core.awsWorker, aws.probeInterval);
  HostNotifications notifications(notifier);
  wireReadiness(readiness, core.host, aws.ec2, notifications, reconciled);
  if (!servers->startMetrics(options)) return kExitFailure;

  logStarting(options, files, *region.region, aws);
  core.host.start(std::move(files.config));
  eni::Reporter reporter(loop, readiness, base, aws, awsProbe, *servers,
                         reportHooks(notifications, core));
  reporter.start();
  loop.run();
  servers->stop();
  return 0;
}
