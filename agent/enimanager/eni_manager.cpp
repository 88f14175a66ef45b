#include "agent/enimanager/eni_manager.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <random>

#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/strings.h"

namespace eni {
namespace {

bool attaches(const ManagerPlan& plan) {
  return std::any_of(plan.actions.ensure.begin(), plan.actions.ensure.end(),
                     [](const EnsureStep& s) { return s.create || s.attachAt; });
}

}  // namespace

struct EniManager::Pass {
  ManagerPassInput in;
  ManagerObservation observed;
  ManagerPlan plan;
  std::vector<EnsureResult> ensured;
  std::vector<ReleaseResult> released;
  std::size_t releasesLeft = 0;
  PassRunner::Done done;
};

EniManager::EniManager(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler,
                       const Clock& clock, Executor& executor, EniLifecycle& lifecycle,
                       NodeStateStore& store, LinkReconciler* links, EniManagerOptions options,
                       const DpdkDevices* dpdk, Executor* dpdkExecutor)
    : kube_(kube),
      wallClock_(clock),
      executor_(executor),
      lifecycle_(lifecycle),
      store_(store),
      links_(links),
      options_(std::move(options)),
      events_(kube, clock, EventRecorderOptions{.nodeName = options_.nodeName}),
      worker_(ec2, imds, lifecycle),
      runner_(scheduler, {options_.debounce, options_.retryDelay},
              [this](PassRunner::Done done) { runPass(std::move(done)); }),
      check_(scheduler,
             [this] {
               // Only a check with nothing else pending is a drift check alone.
               driftCheckOnly_ = runner_.idle();
               bindRetryDue_ = true;
               runner_.markDirty();
               scheduleCheck(false);
             }),
      records_(kube, clock_, options_.nodeName),
      status_(kube, clock_, options_.nodeName),
      cleanupTimer_(scheduler, [this] { checkCleanupDeadlines(); }),
      dpdk_(dpdk),
      devicesExecutor_(dpdkExecutor != nullptr ? *dpdkExecutor : executor) {
  if (links_ != nullptr) links_->setOnChange([this] { onLinksChanged(); });
}

EniManager::~EniManager() {
  if (links_ != nullptr) links_->setOnChange(nullptr);
}

void EniManager::onNode(ChangeType type, const Json::Value& object) {
  if (type == ChangeType::Deleted) return;
  auto node = decodeNode(object, /*annotations=*/false);  // labels: not the node state
  if (!node) return;
  nodeUid_ = node->meta.uid;
  if (node->meta.labels == nodeLabels_) return;
  nodeLabels_ = node->meta.labels;
  markDirty();
}

void EniManager::onNodeEni(ChangeType type, const Json::Value& object) {
  auto decoded = decodeNodeEni(object);
  if (!decoded) return;  // not an object with a name: nothing to act on
  const std::string name = decoded->meta.name;
  if (type == ChangeType::Deleted) {
    nodeEnis_.erase(name);
    forcedAt_.erase(name);
    dotNoted_.erase(name);
    markDirty();
    return;
  }
  // Every agent writes its own status entries, so each write reaches every agent: a pass per
  // status change would cost N^2 passes (and EC2 reads) in a fleet. Only a change of spec or
  // finalizers, or anything during deletion (the last agent removes the finalizer), needs one.
  auto old = nodeEnis_.find(name);
  const bool statusOnly = old != nodeEnis_.end() && !decoded->meta.deleting &&
                          old->second.specJson == decoded->specJson &&
                          old->second.meta.finalizers == decoded->meta.finalizers;
  nodeEnis_[name] = std::move(*decoded);
  if (statusOnly) return;
  bindRetryDue_ = true;
  markDirty();
}

void EniManager::start() {
  takeRecords();
  loadRecords();
  markDirty();
  runner_.start();
  scheduleCheck(true);
}

// Like the tagger's resync: after a start the first check falls anywhere in a whole interval, so
// a fleet restarted at once does not check (and, where IMDS disagrees, read EC2) in step.
void EniManager::scheduleCheck(bool first) {
  if (options_.checkInterval.count() <= 0) return;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(first ? 0.5 : 0.8, first ? 1.5 : 1.2);
  const auto delay = static_cast<double>(options_.checkInterval.count()) * jitter(rng);
  check_.enable(Duration(static_cast<std::int64_t>(delay)));
}

// The previous run's records, once the store has read them. Only that first read is a record of
// the previous run: later ones carry this agent's own writes. A corrupt record leaves none, so
// the first pass reads EC2.
void EniManager::takeRecords() {
  if (recordsTaken_ || !store_.loaded()) return;
  recordsTaken_ = true;
  const NodeState& state = store_.current();
  recorded_.instanceId = state.instanceId;
  recorded_.attachments = state.attachments;
  recorded_.otherEnis.insert(state.unownedEnis.begin(), state.unownedEnis.end());
  for (const auto& a : state.attachments) {
    if (a.dpdk) bound_[a.eniId] = *a.dpdk;
  }
  // The previous run may have been killed with a create in flight: read EC2 first, which finds
  // such an ENI by its ownership tags. The record stays until a pass ends clean.
  writeAhead_.load(state.creating);
  if (!state.creating.empty()) readEc2Next_ = true;
}

// An EC2 pass records the ENIs attached here that are not eni-agent's, as IMDS shows them (what the
// next check compares against). A pass that confirmed the records read IMDS already.
bool EniManager::wantsInterfaces(const Pass& pass) {
  return pass.plan.kind == ObservationKind::Ec2 && !pass.plan.dryRun && !pass.plan.retry &&
         !pass.observed.imds;
}

ManagerPassInput EniManager::snapshot() const {
  ManagerPassInput in;
  in.nodeName = options_.nodeName;
  in.labels = nodeLabels_;
  in.instanceId = instanceId_;
  for (const auto& [name, nodeEni] : nodeEnis_) {
    std::optional<NodeEni> n = nodeEni;
    // This node's entries as its NodeENIAttachment records them (and any an older agent left in
    // the NodeENI's status): what the planner compares its records against.
    std::erase_if(n->attachments,
                  [&](const NodeEniAttachment& a) { return a.nodeId != options_.nodeName; });
    if (auto own = records_.own().find(name); own != records_.own().end()) {
      for (auto e : own->second.entries) {
        e.nodeId = options_.nodeName;
        n->attachments.push_back(std::move(e));
      }
      if (!own->second.reason.empty()) {
        NodeEniAttachment failed;
        failed.nodeId = options_.nodeName;
        failed.status = "failed";
        failed.message = own->second.reason;
        n->attachments.push_back(std::move(failed));
      }
    }
    in.specHashes[name] = specHashFor(*n);
    in.nodeEnis.push_back(std::move(*n));
  }
  in.recorded = recorded_;
  in.mayConfirm = !readEc2Next_ && writeAhead_.empty() && !options_.dryRun;
  in.writeAhead = options_.writeAhead;
  in.dpdk = dpdk_ != nullptr;
  in.dryRun = options_.dryRun;
  in.createStored = writeAhead_.stored();
  in.nothingHere = nothingHere(in.nodeEnis, in.labels);
  return in;
}

// A node no NodeENI selects, with nothing attached by this agent and no status entry of its own,
// has nothing to create or clean up: its pass needs no EC2 read (restarts and the many nodes
// without NodeENIs stay free). Status and finalizers are still kept.
bool EniManager::nothingHere(const std::vector<NodeEni>& nodeEnis,
                             const std::map<std::string, std::string>& labels) const {
  if (!attachments_.empty() || !recorded_.attachments.empty()) return false;
  return std::none_of(nodeEnis.begin(), nodeEnis.end(), [&](const NodeEni& n) {
    const bool selects = !n.meta.deleting && selectorMatches(n.spec.nodeSelector, labels);
    const bool mine =
        std::any_of(n.attachments.begin(), n.attachments.end(),
                    [&](const NodeEniAttachment& a) { return a.nodeId == options_.nodeName; });
    return selects || mine;
  });
}

void EniManager::runPass(PassRunner::Done done) {
  takeRecords();
  // This node's NodeENIAttachment objects are part of its records: no pass before they are read.
  if (!records_.loaded()) {
    loadRecords();
    return done(false);
  }
  auto pass = std::make_shared<Pass>();
  pass->in = snapshot();
  pass->in.driftCheck = driftCheckOnly_;
  driftCheckOnly_ = false;
  pass->done = std::move(done);
  executor_.run(
      [this, pass, wanted = linkWanted()] {
        pass->observed = worker_.observe(pass->in);
        pass->plan = planManagerPass(pass->in, pass->observed, worker_.memo());
        // IMDS's view for the records, before the attaches when there are any: the walk costs a
        // dozen local requests per attached interface, so the pass (and its records) ends sooner.
        if (wantsInterfaces(*pass) && attaches(pass->plan))
          pass->observed.imds = worker_.interfaces();
        pass->ensured = worker_.apply(pass->in, pass->plan, wanted);
      },
      [this, pass] { release(pass); });
}

// The kernel shows an interface about a second after its attach, while the pass may still attach
// others: the link is managed from the moment its MAC is known, so the event that announces it
// configures it. The pass's end (manageLinks) then unmanages any that did not get attached.
OnLinkWanted EniManager::linkWanted() {
  if (links_ == nullptr) return nullptr;
  return [this](const std::string& mac, std::uint32_t mtu) {
    executor_.post([this, mac, mtu] {
      ++linksWantedInPass_;
      links_->manage(mac, mtu);
    });
  };
}

// The releases run on EniLifecycle's executor, several at once; the pass ends when all are back.
void EniManager::release(const std::shared_ptr<Pass>& pass) {
  EniActions& actions = pass->plan.actions;
  std::set<std::string> failed;
  for (const auto& r : pass->ensured) {
    if (r.failure) failed.insert(r.owner);
  }
  holdReleasesOf(failed, actions);
  const bool ec2 = pass->plan.kind == ObservationKind::Ec2 && !pass->plan.dryRun;
  if (!ec2 || actions.release.empty()) return readInterfaces(pass);
  const ReleaseGrounds grounds{pass->plan.instanceId, pass->in.recorded, pass->in.createStored, ""};
  pass->releasesLeft = actions.release.size();
  for (const auto& step : actions.release) releaseOne(pass, step, grounds);
}

// A device bound for DPDK goes back to its driver first: an ENI is never detached from under it.
void EniManager::releaseOne(const std::shared_ptr<Pass>& pass, const ReleaseStep& step,
                            const ReleaseGrounds& grounds) {
  auto done = [this, pass](ReleaseResult r) {
    pass->released.push_back(std::move(r));
    if (--pass->releasesLeft == 0) readInterfaces(pass);
  };
  if (binding_.count(step.eni.id) != 0) {  // its bind's answer comes first; the next pass
    return done(ReleaseResult{step.eni.id, step.owner, ReleaseOutcome::Failed,
                              "its device is being bound for DPDK; will retry", step.eni});
  }
  giveBackDevice(step.eni.id, [this, step, grounds, done](const std::string& why) {
    if (why.empty()) return lifecycle_.release(step, grounds, done);
    done(ReleaseResult{step.eni.id, step.owner, ReleaseOutcome::Failed, why, step.eni});
  });
}

// Otherwise after the releases, so that they do not wait for the walk either.
void EniManager::readInterfaces(const std::shared_ptr<Pass>& pass) {
  if (!wantsInterfaces(*pass)) return finish(pass);
  executor_.run([this, pass] { pass->observed.imds = worker_.interfaces(); },
                [this, pass] { finish(pass); });
}

void EniManager::logOutcomes(const Pass& pass) {
  for (const auto& r : pass.ensured) {
    if (r.deleteOnTermination) {
      logWarn("cannot set DeleteOnTermination, will retry",
              {{"eni", r.eni.id}, {"error", r.deleteOnTermination->describe()}});
    }
  }
  for (const auto& n : pass.plan.actions.refused) {
    warnOnce(n.eni.id,
             n.neverManaged
                 ? "never adopting or attaching an ENI that is not eni-agent's, ignoring it"
                 : "not detaching or deleting an ENI that carries eni-agent's tags, ignoring it",
             n.reason);
  }
  for (const auto& r : pass.released) {
    if (r.outcome == ReleaseOutcome::Released) {
      logInfo("deleted ENI", {{"eni", r.eniId}, {"nodeeni", r.owner}});
    } else if (r.outcome == ReleaseOutcome::Refused) {
      warnOnce(r.eniId,
               "not detaching or deleting an ENI that carries eni-agent's tags, ignoring it",
               r.message);
    } else if (r.outcome == ReleaseOutcome::Failed) {
      logWarn("cannot release ENI, will retry", {{"eni", r.eniId}, {"error", r.message}});
    }
  }
}

void EniManager::warnOnce(const std::string& eniId, const char* message,
                          const std::string& reason) {
  if (!refusedEnis_.insert(eniId).second) return;
  logWarn(message, {{"eni", eniId}, {"reason", reason}});
}

void EniManager::finish(const std::shared_ptr<Pass>& pass) {
  if (pass->observed.kind == ObservationKind::NoDrift) {  // nothing changed, nothing to record
    ++noDriftChecks_;
    bindDevices();  // but a bind that failed is tried again at the check
    return pass->done(false);
  }
  logOutcomes(*pass);
  ManagerRecord record =
      recordManagerPass(pass->in, pass->plan, pass->ensured, pass->released, pass->observed.imds);
  if (!record.instanceId.empty()) instanceId_ = record.instanceId;
  recordDevices(record);
  readEc2Next_ = record.retry || !record.needWriteAhead.empty();
  // Nothing left to create or retry: every ENI made is in the records now.
  if (record.complete && !readEc2Next_) writeAhead_.clear();
  writeAhead_.want(record.needWriteAhead);
  if (record.confirmed) ++confirmedPasses_;
  keepRecords(record);
  manageLinks(record.attached);
  if (!record.instanceId.empty()) publishAttachments();
  for (const auto& p : record.problems) {
    logWarn("NodeENI not satisfied on this node", {{"nodeeni", p.nodeEni}, {"reason", p.message}});
  }
  crashPoint("before-status");
  if (record.complete || pass->plan.kind == ObservationKind::NothingHere) keepBooks(record);
  reportProblems(record);
  bindDevices();
  if (!record.needWriteAhead.empty()) return recordWriteAhead(pass->done);
  pass->done(record.retry);
}

void EniManager::keepRecords(ManagerRecord& record) {
  if (record.complete) {
    recorded_.instanceId = record.instanceId;
    recorded_.attachments.clear();
    for (const auto& a : record.attached) recorded_.attachments.push_back(a.record);
    // Kept and half-released ENIs stay recorded until they are gone. (A confirmed pass had none:
    // such a record never matches IMDS.)
    heldRecords_ = std::move(record.held);
    recorded_.attachments.insert(recorded_.attachments.end(), heldRecords_.begin(),
                                 heldRecords_.end());
    if (!record.confirmed) recorded_.otherEnis = std::move(record.foreign);
  } else {
    // A pass that stopped early attached nothing and knows nothing new: the node state keeps
    // every record, or a kill now would cost the next run its right to release them. Another
    // instance's records are not carried over.
    const bool another = !instanceId_.empty() && recorded_.instanceId != instanceId_;
    heldRecords_ = another ? std::vector<AttachmentRecord>{} : recorded_.attachments;
  }
  attachments_.clear();
  macOf_.clear();
  for (const auto& a : record.attached) {
    attachments_.push_back(a.record);
    macOf_[a.record.eniId] = a.mac;
  }
}

void EniManager::manageLinks(const std::vector<Attached>& attached) {
  if (links_ == nullptr) return;
  std::set<std::string> macs;
  for (const auto& a : attached) {
    // A device bound for DPDK has no interface: its link is not the agent's to keep up.
    if (a.mac.empty() || bound_.count(a.record.eniId) != 0) continue;
    macs.insert(a.mac);
    links_->manage(a.mac, static_cast<std::uint32_t>(std::max<std::int64_t>(a.mtu, 0)));
  }
  std::vector<std::string> stale;
  for (const auto& [mac, link] : links_->links()) {
    if (macs.count(mac) == 0) stale.push_back(mac);
  }
  for (const auto& mac : stale) links_->unmanage(mac);
}

void EniManager::recordWriteAhead(const PassRunner::Done& done) {
  if (!writeAhead_.begin()) return done(false);  // one in flight: its answer starts the next pass
  ++writeAheads_;
  publishAttachments();
  done(false);
  store_.writeAhead([this](bool stored) {
    writeAhead_.finished(stored);
    if (stored) return markDirty();
    logWarn("cannot record the ENI write-ahead in the node state, no ENI created, will retry",
            {{"node", options_.nodeName}, {"in_ms", options_.retryDelay.count()}});
    runAfter(options_.retryDelay);
  });
}

// A link the kernel removed may be an ENI detached behind the agent's back: a pass checks IMDS.
// Only a link newly gone starts one, so a link that stays gone does not start pass after pass.
void EniManager::onLinksChanged() {
  publishAttachments();
  if (linkNewlyGone()) markDirty();
  bindDevices();
}

bool EniManager::linkNewlyGone() {
  std::set<std::string> gone;
  for (const auto& r : attachments_) {
    // A device being bound for DPDK takes its interface away by design.
    if (binding_.count(r.eniId) != 0 || bound_.count(r.eniId) != 0) continue;
    const std::string mac = lower(macOf_[r.eniId]);
    auto link = links_->links().find(mac);
    if (link != links_->links().end() && link->second.state == LinkState::Gone) gone.insert(mac);
  }
  const bool newly = std::any_of(gone.begin(), gone.end(),
                                 [this](const std::string& mac) { return !goneLinks_.count(mac); });
  goneLinks_ = std::move(gone);
  return newly;
}

void EniManager::publishAttachments() {
  std::vector<AttachmentRecord> records = attachments_;
  if (links_ != nullptr) {
    for (auto& r : records) {
      const std::string mac = lower(macOf_[r.eniId]);
      auto link = links_->links().find(mac);
      if (link == links_->links().end()) continue;
      r.interfaceName = link->second.name;
      r.link = std::string(toString(link->second.state));
    }
  }
  records.insert(records.end(), heldRecords_.begin(), heldRecords_.end());
  for (auto& r : records) {
    auto b = bound_.find(r.eniId);
    r.dpdk = b == bound_.end() ? std::nullopt : std::optional<DeviceBinding>(b->second);
  }
  std::vector<std::string> unowned(recorded_.otherEnis.begin(), recorded_.otherEnis.end());
  std::vector<std::string> creating = writeAhead_.names();
  store_.update([&](NodeState& state) {
    state.attachments = records;
    state.unownedEnis = unowned;
    state.creating = creating;
  });
}

void EniManager::crashPoint(const char* where) const {
  if (options_.crashPoint != where) return;
  logWarn("crash point reached, killing myself (test hook)", {{"point", where}});
  raise(SIGKILL);
}

void EniManager::reportProblems(const ManagerRecord& record) {
  std::map<std::string, std::string> now;
  std::map<std::string, std::string> reasons;
  for (const auto& p : record.problems) {
    now[p.nodeEni] = p.message;
    reasons[p.nodeEni] = p.reason;
  }
  for (const auto& [name, message] : now) {
    if (reportedProblems_[name] == message) continue;
    auto it = nodeEnis_.find(name);
    if (it == nodeEnis_.end()) continue;
    events_.record(ObjectReference::nodeEni(it->second.meta), EventType::Warning, reasons[name],
                   "node " + options_.nodeName + ": " + message);
  }
  reportedProblems_ = std::move(now);
}

}  // namespace eni
