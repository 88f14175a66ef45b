#include "agent/tagger/tagger.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <optional>
#include <utility>

#include "agent/base/json.h"
#include "agent/base/log.h"

namespace eni {

// ---------------------------------------------------------------- counters

void TaggerCounters::resolved(ResolveSource source, std::uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  sources_[source] += n;
}
void TaggerCounters::synced(SyncReason result) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++results_[result];
}
void TaggerCounters::syncLatency(Duration d) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (latencies_.size() == 1024) latencies_.erase(latencies_.begin());
  latencies_.push_back(d);
  histogram_.observe(std::chrono::duration<double>(d).count());
}
Histogram TaggerCounters::latencyHistogram() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return histogram_;
}
std::map<ResolveSource, std::uint64_t> TaggerCounters::resolveSources() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return sources_;
}
std::map<SyncReason, std::uint64_t> TaggerCounters::syncResults() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return results_;
}
void TaggerCounters::reconcileError() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++errors_;
}
std::uint64_t TaggerCounters::resolveSource(ResolveSource source) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sources_.find(source);
  return it == sources_.end() ? 0 : it->second;
}
std::uint64_t TaggerCounters::syncResult(SyncReason result) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = results_.find(result);
  return it == results_.end() ? 0 : it->second;
}
std::uint64_t TaggerCounters::reconcileErrors() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return errors_;
}
std::vector<Duration> TaggerCounters::latencies() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return latencies_;
}

// ---------------------------------------------------------------- model

struct Tagger::PodView {
  Pod pod;
  std::string annotation;  // the tags annotation, raw; empty when absent
  bool hasAnnotation = false;
  // The tags annotation parsed when it changes, not in every pass's snapshot.
  Result<TagSet> desired = TagSet{};
  // The last-applied annotation as the snapshot last parsed it (a successful write updates the
  // annotation here before the watch shows it).
  std::string lastAppliedText;
  TagSet lastApplied;
  TimePoint annotationSeen{};
  // What a pass plans of this pod, made by the first snapshot after the view changed and shared
  // by the passes after it: a pass costs the pods that changed, not a copy of every pod.
  std::shared_ptr<const PodJob> job;
  bool latencyOpen = false;  // the annotation's tags have not been seen on the ENI yet
  PodCondition condition;    // the tagged condition as last sent, or as the watch last showed it
  bool eligible() const {
    return hasAnnotation && !pod.hostNetwork && !pod.podIps.empty() && !pod.terminal() &&
           !pod.meta.deleting;
  }
};

namespace {}  // namespace

/// The pass in progress, one at a time: what it planned from, what it planned and wrote, where its
/// write-ahead stands, and the runner's `done`.
struct Tagger::Pass {
  enum class WriteAhead {
    NotNeeded,  // no CreateTags: written at once
    Recording,  // the store is writing the pending record; no tag sent yet
    Stored,     // the record landed: the tags may be sent
    Refused,    // it could not be stored: nothing sent, the pass is retried
  };
  TagPassInput in;
  TagPassOutput out;
  WriteAhead writeAhead = WriteAhead::NotNeeded;
  // The records the write-ahead changed, as they were before it (nullopt: there was none).
  std::map<std::string, std::optional<EniRecord>> before;
  /// The pending records (ENI -> what they say) of the write-ahead sent while the ENIs were read,
  /// from the plan before the read; the tags may go out under it only if the final plan's are the
  /// same (see earlyWriteAhead).
  std::map<std::string, EniRecord> early;
  bool planned = false;   // the final plan is made (the worker's part is done)
  bool released = false;  // in flight beside the next pass (Tagger::flying_): its done is called
  // What it claimed (TagPassOutput::claimed), taken on the loop thread once the plan is made: the
  // next pass's busy() reads it while this one's writes may still run on the worker.
  std::optional<PassScope> claimed;
  std::set<std::string> reported;  // pods Synced before its writes (reportUnwritten)
  std::uint64_t seq = 0;
  // When it started, its final plan was made, and its write-ahead landed (or was not needed):
  // the debug line at its end says where its time went.
  TimePoint started{};
  TimePoint plannedAt{};
  TimePoint recordedAt{};
  PassRunner::Done done;
};

namespace {

constexpr int kEc2CallsPerPass = 2;

// The write-ahead record of one ENI's CreateTags: the hash it writes and the keys it sets.
void recordPending(const EniPlan& plan, EniRecord& record) {
  record.pendingHash = plan.hash;
  record.pendingKeys.clear();
  for (const auto& [k, v] : plan.toSet) {
    if (k != kHashTagKey) record.pendingKeys.push_back(k);
  }
}

// Makes the store's ENI records `enis`, copying only the records that differ (a pass changes a
// few of a node's hundred), and keeps in `before` the first before-image of each one it changes.
// With `claim`, only the records of those ENIs: the others are another pass's, or stay as they are.
void applyRecords(NodeState& s, const std::map<std::string, EniRecord>& enis,
                  std::map<std::string, std::optional<EniRecord>>& before,
                  const std::set<std::string>* claim) {
  if (claim != nullptr) {
    for (const auto& id : *claim) {
      auto have = s.enis.find(id);
      auto want = enis.find(id);
      if (want == enis.end()) {
        if (have == s.enis.end()) continue;
        before.try_emplace(id, std::move(have->second));
        s.enis.erase(have);
      } else if (have == s.enis.end()) {
        before.try_emplace(id, std::nullopt);
        s.enis.emplace(id, want->second);
      } else if (!(have->second == want->second)) {
        before.try_emplace(id, have->second);
        have->second = want->second;
      }
    }
    return;
  }
  auto have = s.enis.begin();
  auto want = enis.begin();
  while (have != s.enis.end() || want != enis.end()) {
    if (want == enis.end() || (have != s.enis.end() && have->first < want->first)) {
      before.try_emplace(have->first, std::move(have->second));
      have = s.enis.erase(have);
    } else if (have == s.enis.end() || want->first < have->first) {
      before.try_emplace(want->first, std::nullopt);
      s.enis.emplace_hint(have, want->first, want->second);
      ++want;
    } else {
      if (!(have->second == want->second)) {
        before.try_emplace(have->first, have->second);
        have->second = want->second;
      }
      ++have;
      ++want;
    }
  }
}

// Puts back what applyRecords changed.
void restoreRecords(NodeState& s, const std::map<std::string, std::optional<EniRecord>>& before) {
  for (const auto& [id, record] : before) {
    if (record)
      s.enis.insert_or_assign(id, *record);
    else
      s.enis.erase(id);
  }
}

}  // namespace

// ---------------------------------------------------------------- events in

Tagger::Tagger(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
               const Clock& clock, NodeStateStore& store, TaggerOptions options)
    : kube_(kube),
      executor_(executor),
      clock_(clock),
      store_(store),
      options_(std::move(options)),
      pass_(ec2, imds, clock, options_, counters_),
      podWriter_(kube, clock),
      events_(kube, clock, EventRecorderOptions{.nodeName = options_.nodeName}),
      // A pass that writes makes up to two EC2 calls (the read, unless a fresh one serves, and
      // CreateTags): when the client's bucket cannot serve both now, the pass waits for them and
      // takes in the pods marked meanwhile, instead of sleeping inside its calls while they queue
      // for a pass of their own.
      runner_(scheduler,
              {options_.coalesceWindow, options_.retryDelay,
               [&ec2] { return ec2.untilCalls(kEc2CallsPerPass); }},
              [this](PassRunner::Done done) { runPass(std::move(done)); }),
      resyncTimer_(scheduler, [this] { resync(); }),
      kubeRetryTimer_(scheduler, [this] { markDirty(); }) {}

Tagger::~Tagger() = default;

void Tagger::onPod(ChangeType type, const Json::Value& object) {
  auto pod = decodePod(object);
  if (!pod) return;
  const std::string key = pod->meta.ns + "/" + pod->meta.name;
  if (type == ChangeType::Deleted) {
    kubeRetryAt_.erase(key);
    unsettled_.erase(key);
    if (pods_.erase(key) != 0) markPod(key);
    return;
  }
  PodView view;
  auto old = pods_.find(key);
  auto annotation = pod->meta.annotations.find(options_.annotationKey);
  // An empty value means no tags, the same as no annotation: zero cost.
  view.hasAnnotation = annotation != pod->meta.annotations.end() &&
                       annotation->second.find_first_not_of(" \t\r\n") != std::string::npos;
  view.annotation = view.hasAnnotation ? annotation->second : "";
  const bool annotationChanged = old == pods_.end() || old->second.annotation != view.annotation ||
                                 old->second.pod.meta.uid != pod->meta.uid;
  view.annotationSeen = annotationChanged ? clock_.now() : old->second.annotationSeen;
  if (annotationChanged || old->second.pod.meta.ns != pod->meta.ns)
    view.desired = parseTagAnnotation(view.annotation, options_.tagNamespace, pod->meta.ns);
  else
    view.desired = old->second.desired;
  if (old != pods_.end()) {
    view.lastAppliedText = old->second.lastAppliedText;
    view.lastApplied = old->second.lastApplied;
  }
  view.latencyOpen = annotationChanged || old->second.latencyOpen;
  if (const PodCondition* c = pod->condition(kTaggedCondition)) {
    view.condition = *c;
    view.condition.lastTransitionTime.clear();  // compared with what would be sent
  }
  view.pod = std::move(*pod);
  // Only what the tagger reads counts as a change; status churn of other kinds is ignored.
  const bool hadView = old != pods_.end();
  const bool relevant = !hadView || annotationChanged ||
                        old->second.pod.podIps != view.pod.podIps ||
                        old->second.eligible() != view.eligible() ||
                        old->second.pod.meta.finalizers != view.pod.meta.finalizers;
  pods_[key] = std::move(view);
  if (relevant && (hadView || pods_[key].hasAnnotation || pods_[key].pod.meta.deleting))
    markPod(key);
}

void Tagger::start() {
  if (started_) return;
  started_ = true;
  if (options_.eniTaggerCacheNamespace.empty()) return begin();
  // Read once, never written: the first pass waits for the answer (the client's timeout bounds it).
  const ObjectRef ref{ResourceKind::configMaps(), options_.eniTaggerCacheNamespace,
                      kEniTaggerCacheName, ""};
  kube_.get(ref, [this](const Result<Json::Value>& configMap) {
    takeEniTaggerCache(configMap);
    begin();
  });
}

void Tagger::takeEniTaggerCache(const Result<Json::Value>& configMap) {
  const std::string where = options_.eniTaggerCacheNamespace + "/" + kEniTaggerCacheName;
  if (!configMap) {
    if (configMap.error().code == ErrorCode::NotFound) return;  // no k8s-eni-tagger here before
    logWarn("cannot read k8s-eni-tagger's ConfigMap, going on without its hints",
            {{"configmap", where}, {"error", configMap.error().describe()}});
    return;
  }
  std::size_t skipped = 0;
  hints_ = parseEniTaggerCache(*configMap, skipped);
  logInfo("read k8s-eni-tagger's ConfigMap once as hints (checked before use, never written)",
          {{"configmap", where}, {"entries", hints_.size()}, {"skipped", skipped}});
}

void Tagger::begin() {
  // A cold start reads the instance's ENIs once, to see whose tags are on them; a warm start
  // needs no EC2 read at all.
  resyncDue_ = store_.current().enis.empty();
  markDirty();
  runner_.start();
  scheduleResync(true);
}

void Tagger::resync() {
  resyncDue_ = true;
  markDirty();
  scheduleResync();
}

void Tagger::scheduleResync(bool afterStart) {
  // One timer: a resync asked for early (tests, a future signal) replaces the pending one.
  // After a start the first resync falls anywhere in a whole interval (0.5-1.5x): when a fleet
  // restarts at once (an upgrade), its reads then spread at nodes/interval per second, as in
  // steady state. With +-20% alone they would bunch into 0.4 of an interval, 2.5 times the rate.
  // No read comes sooner than half an interval after a restart.
  const auto jitter = afterStart ? std::uniform_real_distribution<double>(0.5, 1.5)(rng_)
                                 : std::uniform_real_distribution<double>(0.8, 1.2)(rng_);
  const auto delay = static_cast<double>(options_.resyncInterval.count()) * jitter;
  resyncTimer_.enable(Duration(static_cast<std::int64_t>(delay)));
}

const NodeState& Tagger::state() const { return store_.current(); }

bool Tagger::idle() const {
  return runner_.idle() && flying_.empty() && podWriter_.inFlight() == 0 &&
         events_.inFlight() == 0 && store_.idle();
}

void Tagger::markDirty() {
  markAll_ = true;
  runner_.markDirty();
}

void Tagger::markPod(const std::string& key) {
  marked_.insert(key);
  runner_.markDirty();
}

// ---------------------------------------------------------------- the pass

PassScope Tagger::busy() const {
  PassScope busy;
  for (const auto& [seq, pass] : flying_) {
    const std::optional<PassScope>& claim = pass->claimed;
    if (!claim) continue;  // released only with a claim (release())
    const PassScope& claimed = *claim;
    busy.enis.insert(claimed.enis.begin(), claimed.enis.end());
    busy.pods.insert(claimed.pods.begin(), claimed.pods.end());
  }
  return busy;
}

bool Tagger::unsettledRecords(const std::set<std::string>& busy) const {
  // A write-ahead record (a restart, or a CreateTags that failed) needs a Describe to tell
  // whether its CreateTags landed; those of the passes in flight are theirs to settle.
  const auto& enis = store_.current().enis;
  return std::any_of(enis.begin(), enis.end(), [&](const auto& e) {
    return e.second.hasPending() && busy.count(e.first) == 0;
  });
}

TagPassInput Tagger::snapshot(PassScope busy) {
  TagPassInput in;
  // The pass lets go of the view when its plan ends, before this runs again: brought up to date,
  // not copied. Copied only if a pass still held it.
  if (!records_ || records_.use_count() > 1)
    records_ = records_ ? std::make_shared<RecordView>(*records_) : std::make_shared<RecordView>();
  records_->refresh(store_.current());
  in.records = records_;
  in.observeAll = resyncDue_ || unsettledRecords(busy.enis);
  in.busy = std::move(busy);
  // A pass plans the pods marked since the last one and what they share an ENI with; the pods a
  // failed verdict left unsettled go with them, since what failed may be gone now.
  if (!markAll_) {
    in.marked = std::move(marked_);
    for (auto it = unsettled_.begin(); it != unsettled_.end();) {
      auto view = pods_.find(*it);
      if (view == pods_.end() || !view->second.eligible()) {
        it = unsettled_.erase(it);  // gone, or no longer asks for tags: marked when it changed
        continue;
      }
      in.marked->insert(*it++);
    }
  }
  marked_.clear();
  markAll_ = false;
  in.pods.reserve(pods_.size());
  for (auto& [key, view] : pods_) {
    if (!view.eligible()) continue;
    refreshJob(key, view);
    // Once: a hint that fails its check is gone by the retry, which looks the pod up again. Only
    // a pod the pass looks up may spend it (on a copy of its job: the view's stays without).
    if (!hints_.empty() && (!in.marked || in.marked->count(key) != 0)) {
      if (auto eni = cachedEniFor(hints_, view.job->ip, view.job->uid); !eni.empty()) {
        hints_.erase(view.job->ip);
        auto hinted = std::make_shared<PodJob>(*view.job);
        hinted->hintedEni = std::move(eni);
        in.pods.push_back(std::move(hinted));
        continue;
      }
    }
    in.pods.push_back(view.job);
  }
  return in;
}

void Tagger::refreshJob(const std::string& key, PodView& view) {
  const auto& ann = view.pod.meta.annotations;
  // Parsed again only when its text changed (the watch, or this agent's own write).
  static const std::string kNone;
  auto text = ann.find(kLastAppliedTagsAnnotation);
  const std::string& now = text == ann.end() ? kNone : text->second;
  if (now != view.lastAppliedText) {
    view.lastAppliedText = now;
    auto parsed = now.empty() ? Result<TagSet>(TagSet{}) : parseTagAnnotation(now);
    view.lastApplied = parsed ? std::move(*parsed) : TagSet{};
    view.job.reset();
  }
  if (view.job) return;
  auto job = std::make_shared<PodJob>();
  job->key = key;
  job->uid = view.pod.meta.uid;
  job->ns = view.pod.meta.ns;
  job->ip = view.pod.podIps.front();
  job->desired = view.desired;
  job->lastApplied = view.lastApplied;
  if (auto it = ann.find(kLastAppliedHashAnnotation); it != ann.end())
    job->lastAppliedHash = it->second;
  if (auto it = ann.find(kPodEniAnnotation); it != ann.end()) job->podEniAnnotation = it->second;
  view.job = std::move(job);
}

void Tagger::runPass(PassRunner::Done done) {
  PassScope claimed = busy();
  // Beside passes in flight runs only a scoped pass: one of every pod (a start, a resync, a
  // retry) or one that reads every ENI starts once they have landed.
  if (!flying_.empty() && (markAll_ || resyncDue_ || unsettledRecords(claimed.enis))) {
    held_ = std::move(done);
    return;
  }
  current_ = std::make_unique<Pass>();
  Pass* const p = current_.get();
  p->seq = ++passSeq_;
  p->started = clock_.now();
  p->in = snapshot(std::move(claimed));
  p->done = std::move(done);
  resyncDue_ = false;
  executor_.run(
      [this, p] {
        Pass& pass = *p;
        pass_.plan(pass.in, pass.out,
                   [this, seq = pass.seq](const TagPassOutput& first) { recordEarly(seq, first); });
        // Without a CreateTags (nothing, or DeleteTags of owned keys only) there is no new
        // ownership to record ahead: write at once.
        if (options_.dryRun || !pass.out.creates()) {
          pass_.write(pass.out);
          pass.out.written = true;
        }
      },
      [this, p] {
        p->planned = true;
        p->plannedAt = clock_.now();
        p->claimed = std::move(p->out.claimed);
        if (!p->out.written) reportUnwritten(*p);
        deferred_.merge(p->out.deferred);
        if (flying_.empty()) remarkDeferred();
        // An early write-ahead still on its way: its answer goes on (onEarlyWriteAhead), and
        // meanwhile the next pass may plan beside this one.
        if (p->writeAhead != Pass::WriteAhead::Recording) return afterPlan(*p);
        release(*p);
      });
}

// The executor's thread, between the first plan and the read of the ENIs it writes. The first
// plan's CreateTags on ENIs this agent keeps a record of, or that IMDS or EC2 name for a pod, are
// recorded ahead now, while the read goes on; an ENI only a pod's annotation names waits for the
// final plan. The patch goes out from the loop thread.
void Tagger::recordEarly(std::uint64_t seq, const TagPassOutput& first) {
  if (options_.dryRun) return;
  // ENIs this node's own sources name: IMDS, EC2 by the pod's IP, the node state's records. Not
  // one that only a pod's annotation (or k8s-eni-tagger's ConfigMap) names: that waits for the
  // read.
  std::set<std::string> trusted;
  for (const auto& [key, r] : first.eniOf) {
    if (r.source == ResolveSource::Imds || r.source == ResolveSource::Ec2 ||
        r.source == ResolveSource::Cache)
      trusted.insert(r.eniId);
  }
  std::map<std::string, EniRecord> early;
  for (const auto& plan : first.plans) {
    if (plan.toSet.empty()) continue;
    auto it = first.state.enis.find(plan.eniId);
    if (it == first.state.enis.end() && trusted.count(plan.eniId) == 0) continue;
    if (it != first.state.enis.end() && it->second.hasPending()) continue;
    EniRecord record = it == first.state.enis.end() ? EniRecord{} : it->second;
    recordPending(plan, record);
    early[plan.eniId] = std::move(record);
  }
  if (early.empty()) return;
  // The records the store takes: the claimed ones (a scoped pass), else all.
  std::map<std::string, EniRecord> enis;
  std::optional<std::set<std::string>> claim;
  if (first.claimed) {
    claim = first.claimed->enis;
    for (const auto& id : *claim) {
      if (auto it = first.state.enis.find(id); it != first.state.enis.end())
        enis.emplace(id, it->second);
    }
  } else {
    enis = first.state.enis;
  }
  for (const auto& [id, record] : early) enis[id] = record;
  executor_.post([this, seq, instanceId = first.state.instanceId, enis = std::move(enis),
                  early = std::move(early), claim = std::move(claim)]() mutable {
    earlyWriteAhead(seq, instanceId, std::move(enis), std::move(early), claim);
  });
}

void Tagger::earlyWriteAhead(std::uint64_t seq, const std::string& instanceId,
                             std::map<std::string, EniRecord> enis,
                             std::map<std::string, EniRecord> early,
                             const std::optional<std::set<std::string>>& claim) {
  // An executor whose post() waits for the job's end delivers this after the final plan: then the
  // pass goes on without it (or is over).
  if (!current_ || current_->seq != seq || current_->planned) return;
  Pass& pass = *current_;
  if (!store_.problem().empty()) return;  // the final plan withholds its writes
  pass.early = std::move(early);
  pass.writeAhead = Pass::WriteAhead::Recording;
  store_.update([&](NodeState& s) {
    s.instanceId = instanceId;
    applyRecords(s, enis, pass.before, claim ? &*claim : nullptr);
  });
  store_.writeAhead([this, p = &pass](bool stored) { onEarlyWriteAhead(*p, stored); });
}

void Tagger::onEarlyWriteAhead(Pass& pass, bool stored) {
  pass.writeAhead = stored ? Pass::WriteAhead::Stored : Pass::WriteAhead::Refused;
  if (!stored) store_.update([&](NodeState& s) { restoreRecords(s, pass.before); });
  if (pass.planned) afterPlan(pass);
}

bool Tagger::coveredEarly(const Pass& pass) const {
  if (pass.writeAhead != Pass::WriteAhead::Stored) return false;
  return std::all_of(pass.out.plans.begin(), pass.out.plans.end(), [&](const EniPlan& plan) {
    if (plan.toSet.empty()) return true;
    auto early = pass.early.find(plan.eniId);
    auto final = pass.out.state.enis.find(plan.eniId);
    return early != pass.early.end() && final != pass.out.state.enis.end() &&
           early->second.pendingHash == final->second.pendingHash &&
           early->second.pendingKeys == final->second.pendingKeys;
  });
}

void Tagger::afterPlan(Pass& pass) {
  if (pass.out.written) return finish(pass);
  if (const std::string problem = store_.problem(); !problem.empty()) {
    // Nothing can be recorded: no CreateTags, and the pods say why (no retry: it stays so
    // until the store can keep the state again).
    for (auto& plan : pass.out.plans) {
      if (!plan.toSet.empty()) withholdWrites(plan, pass.out.state, problem);
    }
    return writeThenFinish(pass);
  }
  // Write-ahead: record the tags about to be created as pending on their ENIs, and send them only
  // once the node state holds that record. A kill after CreateTags then still leaves the record
  // of what the agent may own, for the restart to clean up if the pod is gone by then.
  for (const auto& plan : pass.out.plans) {
    if (!plan.toSet.empty()) recordPending(plan, pass.out.state.enis[plan.eniId]);
  }
  // The record sent while the ENIs were read says exactly this: it landed, the tags may go.
  const bool covered = coveredEarly(pass);
  // pass.before keeps the records from before any write-ahead of this pass, for a refusal to go
  // back to. An early record that was refused (the API server, or a first plan past the 64 KiB
  // budget that the final plan keeps to) was put back, and is followed by this one.
  const auto& claimed = pass.claimed;
  store_.update([&](NodeState& s) {
    s.instanceId = pass.out.state.instanceId;
    applyRecords(s, pass.out.state.enis, pass.before, claimed ? &claimed->enis : nullptr);
  });
  if (covered) return writeThenFinish(pass);
  pass.writeAhead = Pass::WriteAhead::Recording;
  // While its record is on its way (the longest wait of a pass that writes), the next pass may
  // plan beside it: what this one claimed stays out of that one's scope (release).
  release(pass);
  store_.writeAhead([this, p = &pass](bool stored) { onWriteAhead(*p, stored); });
}

void Tagger::release(Pass& pass) {
  if (!pass.claimed || current_.get() != &pass) return;
  pass.released = true;
  auto done = std::move(pass.done);
  flying_.emplace(pass.seq, std::move(current_));
  done(std::exchange(retryAsked_, false));
}

void Tagger::onWriteAhead(Pass& pass, bool stored) {
  pass.writeAhead = stored ? Pass::WriteAhead::Stored : Pass::WriteAhead::Refused;
  if (stored) return writeThenFinish(pass);
  // No tag was sent: forget the write-ahead and try the pass again later, with every pod.
  logWarn("cannot record the write-ahead node state, tags not written, will retry",
          {{"node", options_.nodeName}, {"in_ms", options_.retryDelay.count()}});
  store_.update([&](NodeState& s) { restoreRecords(s, pass.before); });
  end(pass, true);
}

void Tagger::writeThenFinish(Pass& pass) {
  pass.recordedAt = clock_.now();
  executor_.run([this, p = &pass] { pass_.write(p->out); }, [this, p = &pass] { finish(*p); });
}

void Tagger::logPass(const Pass& pass) const {
  if (!logging::enabled(LogLevel::Debug)) return;
  const TimePoint now = clock_.now();
  auto ms = [](TimePoint from, TimePoint to) {
    return from == TimePoint{} || to == TimePoint{}
               ? 0.0
               : std::chrono::duration<double, std::milli>(to - from).count();
  };
  // The oldest annotation this pass answers: how long its pod waited before the pass began.
  TimePoint oldest{};
  for (const auto& [key, verdict] : pass.out.verdicts) {
    auto view = pods_.find(key);
    if (view == pods_.end() || !view->second.latencyOpen) continue;
    if (oldest == TimePoint{} || view->second.annotationSeen < oldest)
      oldest = view->second.annotationSeen;
  }
  std::size_t writes = 0;
  for (const auto& plan : pass.out.plans) writes += plan.writes() ? 1 : 0;
  const TimePoint recorded = pass.recordedAt == TimePoint{} ? pass.plannedAt : pass.recordedAt;
  logDebug("tag pass", {{"pass", pass.seq},
                        {"pods", pass.out.verdicts.size()},
                        {"writes", writes},
                        {"waited_ms", ms(oldest, pass.started)},
                        {"plan_ms", ms(pass.started, pass.plannedAt)},
                        {"record_ms", ms(pass.plannedAt, recorded)},
                        {"write_ms", ms(recorded, now)},
                        {"total_ms", ms(pass.started, now)}});
}

void Tagger::finish(Pass& pass) {
  TagPassOutput& out = pass.out;
  logPass(pass);
  store_.update([&](NodeState& s) {
    s.instanceId = out.state.instanceId;
    if (!pass.claimed) {
      s.enis = std::move(out.state.enis);
      return;
    }
    for (const auto& id : pass.claimed->enis) {
      if (auto it = out.state.enis.find(id); it != out.state.enis.end())
        s.enis.insert_or_assign(id, std::move(it->second));
      else
        s.enis.erase(id);
    }
  });
  for (const auto& [key, verdict] : out.verdicts) {
    if (pass.reported.count(key) != 0) continue;  // reportUnwritten
    counters_.synced(verdict.reason);
    if (verdict.reason == SyncReason::TaggingFailed ||
        verdict.reason == SyncReason::EniLookupFailed)
      unsettled_.insert(key);
    else
      unsettled_.erase(key);
    auto applied = out.appliedByPod.find(key);
    writePod(key, verdict, applied == out.appliedByPod.end() ? nullptr : &applied->second,
             out.wrotePods.count(key) != 0);
  }
  cleanUpPods(out.droppedPods);
  end(pass, out.retry);
}

void Tagger::reportUnwritten(Pass& pass) {
  // A pod whose ENI this pass does not write is Synced now, whatever becomes of the writes to
  // other ENIs: it need not wait for their record and CreateTags (a burst's pods that join an
  // ENI already tagged). Its membership is recorded with the rest of the pass.
  std::map<std::string, const PodJob*> jobs;
  for (const auto& plan : pass.out.plans) {
    if (plan.writes()) continue;
    for (const auto& v : plan.verdicts) {
      if (v.reason != SyncReason::Synced) continue;
      auto other = pass.out.verdicts.find(v.podKey);
      if (other != pass.out.verdicts.end() && other->second.reason != SyncReason::Synced) continue;
      if (jobs.empty()) {
        for (const auto& job : pass.out.pods) jobs.emplace(job.key, &job);
      }
      auto job = jobs.find(v.podKey);
      if (job == jobs.end() || !job->second->desired) continue;
      counters_.synced(v.reason);
      unsettled_.erase(v.podKey);
      writePod(v.podKey, v, &*job->second->desired, false);
      pass.reported.insert(v.podKey);
    }
  }
}

void Tagger::remarkDeferred() {
  // The pods a pass left for later are judged again once a pass in flight has ended (they may
  // reach another one still, and wait again), or at once when none is.
  if (deferred_.empty()) return;
  marked_.merge(deferred_);
  deferred_.clear();
  runner_.markDue();  // they waited their window already
}

void Tagger::end(Pass& pass, bool retry) {
  if (retry) markAll_ = true;
  std::unique_ptr<Pass> gone;
  if (pass.released) {
    auto it = flying_.find(pass.seq);
    gone = std::move(it->second);
    flying_.erase(it);
  } else {
    gone = std::move(current_);
  }
  if (pass.released || flying_.empty()) remarkDeferred();
  if (!pass.released) return gone->done(retry || std::exchange(retryAsked_, false));
  // Its done was called when it was released: a retry it asks for goes to the pass running now,
  // or to the runner.
  if (retry && !held_) {
    if (runner_.running())
      retryAsked_ = true;
    else
      runner_.runAfter(options_.retryDelay);
  }
  if (flying_.empty() && held_) runPass(std::exchange(held_, nullptr));
}

void Tagger::cleanUpPods(const std::set<std::string>& dropped) {
  // Pods whose tags were cleaned up: drop their last-applied record, and k8s-eni-tagger's
  // finalizer once the cleanup is done.
  for (const auto& [key, view] : pods_) {
    const auto& meta = view.pod.meta;
    const bool oldFinalizer = std::find(meta.finalizers.begin(), meta.finalizers.end(),
                                        kOldTaggerFinalizer) != meta.finalizers.end();
    const std::string ip = view.pod.podIps.empty() ? "" : view.pod.podIps.front();
    if (meta.deleting && oldFinalizer && memberEni(store_.current(), key, meta.uid, ip).empty()) {
      podWriter_.removeFinalizer(meta, kOldTaggerFinalizer, [this, key](Result<void> r) {
        if (r)
          logInfo("removed k8s-eni-tagger's finalizer after cleanup", {{"pod", key}});
        else if (r.error().code != ErrorCode::NotFound)
          markDirty();  // Conflict: the pod moved on; the watch brings the new version
      });
    } else if (dropped.count(key) != 0 && !meta.deleting &&
               meta.annotations.count(kLastAppliedHashAnnotation) != 0 && !view.eligible()) {
      podWriter_.clearLastApplied(meta, nullptr);
    }
  }
}

void Tagger::writePod(const std::string& key, const PodVerdict& verdict, const TagSet* applied,
                      bool wrote) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  PodView& view = it->second;
  const std::string message = conditionMessage(verdict);
  const PodCondition wanted{kTaggedCondition,
                            verdict.reason == SyncReason::Synced ? "True" : "False",
                            std::string(toString(verdict.reason)), message, ""};
  // The condition goes again only when it differs from what was last sent, or the watch showed.
  const bool conditionDue = !(view.condition == wanted) && !backingOff(key);
  bool newForPod = false;
  bool lastAppliedSent = false;
  if (applied != nullptr) {
    const auto& meta = view.pod.meta;
    std::string json = tagsToJson(*applied);
    std::string hash = tagHash(*applied);
    auto a = meta.annotations.find(kLastAppliedTagsAnnotation);
    auto h = meta.annotations.find(kLastAppliedHashAnnotation);
    newForPod = a == meta.annotations.end() || a->second != json || h == meta.annotations.end() ||
                h->second != hash;
    // One write per pod in flight, and none while a failed one backs off: a pass that ran before
    // the watch showed the last write would otherwise send it again, and a failure that started
    // the next pass at once fed a storm of 429s from the API server.
    if (newForPod && annotationWrites_.count(key) == 0 && !backingOff(key)) {
      writeLastApplied(key, view, json, hash, conditionDue ? &wanted : nullptr);
      lastAppliedSent = true;
    }
  }
  if (conditionDue && !lastAppliedSent) writeCondition(key, view, wanted);
  report(key, view, verdict, message, wrote, newForPod);
}

void Tagger::writeLastApplied(const std::string& key, PodView& view, const std::string& json,
                              const std::string& hash, const PodCondition* condition) {
  annotationWrites_.insert(key);
  if (condition != nullptr) view.condition = *condition;
  podWriter_.recordLastApplied(
      view.pod.meta, json, hash, condition, view.pod.condition(kTaggedCondition),
      [this, key, json, hash, withCondition = condition != nullptr](Result<void> r) {
        annotationWrites_.erase(key);
        auto p = pods_.find(key);
        if (r) {
          // What the watch will show; until then the next pass need not write it.
          if (p != pods_.end()) {
            p->second.pod.meta.annotations[kLastAppliedTagsAnnotation] = json;
            p->second.pod.meta.annotations[kLastAppliedHashAnnotation] = hash;
          }
          return;
        }
        if (r.error().code == ErrorCode::NotFound) return;
        logWarn(withCondition ? "cannot record last-applied tags and the condition on the pod, "
                                "will retry"
                              : "cannot record last-applied tags on the pod, will retry",
                {{"pod", key},
                 {"in_ms", options_.retryDelay.count()},
                 {"error", r.error().describe()}});
        // Forget the condition sent, so the retry sends it again.
        if (withCondition && p != pods_.end()) p->second.condition = PodCondition{};
        backOff(key);
      });
}

std::string Tagger::conditionMessage(const PodVerdict& verdict) const {
  if (verdict.reason == SyncReason::InvalidTags) {
    return "annotation " + options_.annotationKey + " is invalid: " + verdict.message +
           ". Fix the annotation; the tags already applied stay as they were";
  }
  return verdict.message.empty() ? "the ENI carries the pod's tags" : verdict.message;
}

void Tagger::writeCondition(const std::string& key, PodView& view, const PodCondition& wanted) {
  view.condition = wanted;
  podWriter_.setCondition(
      view.pod.meta, wanted, view.pod.condition(kTaggedCondition), [this, key](Result<void> r) {
        if (r || r.error().code == ErrorCode::NotFound) return;
        logWarn("cannot set the pod condition, will retry", {{"pod", key},
                                                             {"in_ms", options_.retryDelay.count()},
                                                             {"error", r.error().describe()}});
        // Forget what was sent, so the retry sends it again.
        if (auto p = pods_.find(key); p != pods_.end()) p->second.condition = PodCondition{};
        backOff(key);
      });
}

void Tagger::report(const std::string& key, PodView& view, const PodVerdict& verdict,
                    const std::string& message, bool wrote, bool newForPod) {
  const auto last = reported_.find(key);
  const bool transition = last == reported_.end() || last->second.first != verdict.reason ||
                          last->second.second != message;
  reported_[key] = {verdict.reason, message};
  if (verdict.reason == SyncReason::Synced) {
    // Annotation seen -> its tags on the ENI, once per annotation: when this pass wrote them, or
    // when the ENI already carried them (a pod joining an ENI its neighbours had tagged). A
    // restart's already-synced pods are no sample.
    if (view.latencyOpen && (wrote || newForPod)) {
      const auto latency = std::chrono::duration_cast<Duration>(clock_.now() - view.annotationSeen);
      counters_.syncLatency(latency);
      // The latency on the line lets a benchmark take exact percentiles, not histogram buckets.
      logInfo("tags applied",
              {{"pod", key},
               {"wrote", wrote ? "true" : "false"},
               {"latency_ms", std::chrono::duration<double, std::milli>(latency).count()}});
    }
    view.latencyOpen = false;
  } else if (transition) {
    logWarn("pod not tagged",
            {{"pod", key}, {"reason", toString(verdict.reason)}, {"message", message}});
  }
  // An event per transition, and TagsApplied per write; the recorder aggregates repeats.
  // DryRun gets none.
  static const std::map<SyncReason, const char*> kEvents = {
      {SyncReason::Synced, "TagsApplied"},
      {SyncReason::InvalidTags, "InvalidTags"},
      {SyncReason::Conflict, "HashConflict"},
      {SyncReason::EniLookupFailed, "ENILookupFailed"},
      {SyncReason::TaggingFailed, "TaggingFailed"},
      {SyncReason::EniValidationFailed, "ENIValidationFailed"}};
  const auto known = kEvents.find(verdict.reason);
  const bool emit = verdict.reason == SyncReason::Synced ? wrote : transition;
  if (known == kEvents.end() || !emit) return;
  events_.record(ObjectReference::pod(view.pod.meta),
                 verdict.reason == SyncReason::Synced ? EventType::Normal : EventType::Warning,
                 known->second, message);
}

bool Tagger::backingOff(const std::string& key) {
  auto it = kubeRetryAt_.find(key);
  if (it == kubeRetryAt_.end()) return false;
  if (clock_.now() >= it->second) {
    kubeRetryAt_.erase(it);
    return false;
  }
  kubeRetryTimer_.enableIfDisabled(options_.retryDelay);
  return true;
}

void Tagger::backOff(const std::string& key) {
  kubeRetryAt_[key] = clock_.now() + options_.retryDelay;
  kubeRetryTimer_.enableIfDisabled(options_.retryDelay);
}

}  // namespace eni
