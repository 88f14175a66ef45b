#include "agent/host/host_reconciler.h"

#include <map>
#include <memory>
#include <random>

#include "agent/base/log.h"

namespace eni {

struct HostReconciler::Pass {
  HostPassInput in;
  HostWork work;
  std::vector<ReleaseResult> released;
  std::size_t releasesLeft = 0;
  PassRunner::Done done;
};

HostReconciler::HostReconciler(Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
                               EniLifecycle& lifecycle, NodeStateStore& store,
                               LinkReconciler* links, HostReconcilerOptions options)
    : executor_(executor),
      lifecycle_(lifecycle),
      store_(store),
      links_(links),
      options_(options),
      worker_(ec2, imds, lifecycle),
      runner_(scheduler, {options_.debounce, options_.retryDelay},
              [this](PassRunner::Done done) { runPass(std::move(done)); }),
      resync_(scheduler, [this] {
        verifyNext_ = true;
        runner_.markDirty();
      }) {
  if (links_ != nullptr) links_->setOnChange([this] { onLinkChange(); });
}

HostReconciler::~HostReconciler() {
  if (links_ != nullptr) links_->setOnChange(nullptr);
}

void HostReconciler::start(HostConfig config) {
  config_ = std::move(config);
  writeAhead_.load(store_.current().creating);
  runner_.markDirty();
  runner_.start();
}

void HostReconciler::setConfig(HostConfig config) {
  if (config == config_) return;
  config_ = std::move(config);
  runner_.markDirty();
}

void HostReconciler::runPass(PassRunner::Done done) {
  auto pass = std::make_shared<Pass>();
  pass->in = {config_,     store_.current(), hostLinks_,
              verifyNext_, options_.dryRun,  writeAhead_.stored()};
  pass->done = std::move(done);
  verifyNext_ = false;
  executor_.run([this, pass, wanted = linkWanted()] { worker_.run(pass->in, pass->work, wanted); },
                [this, pass] { release(pass); });
}

// As in the ENI manager: a link is managed from the moment its MAC is known, so the event that
// announces it configures it mid-pass; the pass's end (manageLinks) drops any left unattached.
OnLinkWanted HostReconciler::linkWanted() {
  if (links_ == nullptr) return nullptr;
  return [this](const std::string& mac, std::uint32_t mtu) {
    executor_.post([this, mac, mtu] { links_->manage(mac, mtu); });
  };
}

// The releases run on EniLifecycle's executor, several at once; the pass ends when all are back.
void HostReconciler::release(const std::shared_ptr<Pass>& pass) {
  HostWork& work = pass->work;
  if (!work.observed.ok) return finish(pass);
  holdReleasesOf(work.interfaces.failedKeys, work.actions);
  for (const auto& n : work.actions.refused) warnOnce(n.eni.id, n.reason);
  if (pass->in.dryRun || work.actions.release.empty()) return finish(pass);
  const LifecycleObservation& view = work.observed.lifecycle;
  const ReleaseGrounds grounds{view.owner.instanceId, view.records, view.createStored,
                               view.ownerPrefix};
  pass->releasesLeft = work.actions.release.size();
  for (const auto& step : work.actions.release) {
    lifecycle_.release(step, grounds, [this, pass](ReleaseResult r) {
      pass->released.push_back(std::move(r));
      if (--pass->releasesLeft == 0) finish(pass);
    });
  }
}

void HostReconciler::finish(const std::shared_ptr<Pass>& pass) {
  HostWork& work = pass->work;
  logReleases(pass->released);
  const bool ok = work.observed.ok;
  NodeState state = ok ? std::move(work.state) : pass->in.state;
  bool retry = work.retry;
  recordHostReleases(pass->released, state, work.problems, retry);
  std::vector<std::string> needWriteAhead;
  if (ok && !pass->in.dryRun) needWriteAhead = work.actions.awaitWriteAhead;
  if (work.observed.reset) writeAhead_.clear();
  // A pass that stops early (IMDS or EC2 unreachable) changes nothing on the links: what was
  // brought up and addressed stays as it is.
  if (ok) hostLinks_ = work.interfaces.links;
  manageLinks();
  keepState(std::move(state), needWriteAhead, retry);
  if (onLinks_) onLinks_(hostLinks_);
  work.enis = ok ? work.enis : 0;
  report(work, retry, !needWriteAhead.empty());
  pass->done(retry);
  if (!needWriteAhead.empty()) recordWriteAhead();
  armResync();
}

void HostReconciler::logReleases(const std::vector<ReleaseResult>& released) {
  for (const auto& r : released) {
    if (r.outcome == ReleaseOutcome::Released) {
      logInfo("deleted ENI that left host.json", {{"eni", r.eniId}, {"interface", r.owner}});
    } else if (r.outcome == ReleaseOutcome::Refused) {
      warnOnce(r.eniId, r.message);
    }
  }
}

void HostReconciler::keepState(NodeState state, const std::vector<std::string>& needWriteAhead,
                               bool retry) {
  // Link names come from the loop thread's LinkReconciler, not from the pass.
  std::map<std::string, std::string> names;
  for (const auto& a : store_.current().attachments) names[a.eniId] = a.interfaceName;
  for (auto& a : state.attachments) {
    auto it = names.find(a.eniId);
    if (it != names.end() && a.interfaceName.empty()) a.interfaceName = it->second;
  }
  if (!needWriteAhead.empty()) {
    writeAhead_.want(needWriteAhead);
  } else if (!retry) {
    writeAhead_.clear();  // nothing left to create or retry: every ENI made is in the records now
  }
  state.creating = writeAhead_.names();
  withLinks(state);
  store_.update([&](NodeState& s) { s = std::move(state); });
}

void HostReconciler::manageLinks() {
  if (links_ == nullptr) return;
  std::set<std::string> macs;
  for (const auto& l : hostLinks_) {
    if (l.mac.empty()) continue;
    macs.insert(l.mac);
    links_->manage(l.mac, l.mtu);
  }
  std::vector<std::string> stale;
  for (const auto& [mac, link] : links_->links()) {
    if (macs.count(mac) == 0) stale.push_back(mac);
  }
  for (const auto& mac : stale) links_->unmanage(mac);
}

void HostReconciler::report(const HostWork& work, bool retry, bool waitsForWriteAhead) {
  HostPassReport report;
  report.pass = runner_.passes();
  report.complete = !retry && !waitsForWriteAhead;
  report.enis = work.enis;
  report.interfaces = work.observed.ok ? work.interfaces.links.size() : 0;
  report.wanted = config_.interfaces.size();
  report.problems = work.problems;
  if (!retry) ++completePasses_;
  std::string problems;
  for (const auto& p : report.problems) problems += p + "\n";
  if (problems != lastProblems_) {
    for (const auto& p : report.problems) logWarn("host reconcile problem", {{"problem", p}});
    lastProblems_ = problems;
  }
  if (onPass_) onPass_(report);
}

// The store's answer starts the next pass: stored, it creates; not stored, nothing is created
// and the write-ahead is tried again after the retry delay.
void HostReconciler::recordWriteAhead() {
  if (!writeAhead_.begin()) return;
  store_.writeAhead([this](bool stored) {
    writeAhead_.finished(stored);
    if (stored) return runner_.markDirty();
    logWarn("cannot record the ENI write-ahead in the state file, no ENI created, will retry",
            {{"in_ms", options_.retryDelay.count()}});
    runner_.runAfter(options_.retryDelay);
  });
}

void HostReconciler::armResync() {
  if (resync_.enabled() || options_.resyncInterval.count() <= 0) return;
  // ±20% jitter, so a fleet restarted together does not describe together.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const auto base = options_.resyncInterval.count();
  std::uniform_int_distribution<long long> jitter(base * 8 / 10, base * 12 / 10);
  resync_.enable(Duration(jitter(rng)));
}

void HostReconciler::withLinks(NodeState& state) const {
  if (links_ == nullptr) return;
  std::map<std::string, std::string> macOf;
  for (const auto& l : hostLinks_) macOf[l.eniId] = l.mac;
  for (auto& a : state.attachments) {
    auto link = links_->links().find(macOf[a.eniId]);
    if (link == links_->links().end() || a.phase == AttachmentPhase::Releasing) continue;
    if (!link->second.name.empty()) a.interfaceName = link->second.name;
    a.link = std::string(toString(link->second.state));
  }
}

void HostReconciler::onLinkChange() {
  store_.update([this](NodeState& s) { withLinks(s); });
  if (onLinks_) onLinks_(hostLinks_);
}

void HostReconciler::warnOnce(const std::string& eniId, const std::string& reason) {
  if (!refusedEnis_.insert(eniId).second) return;
  logWarn("not adopting, detaching or deleting an ENI that carries eni-agent's tags, ignoring it",
          {{"eni", eniId}, {"reason", reason}});
}

}  // namespace eni
