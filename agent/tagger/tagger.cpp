#include "agent/tagger/tagger.h"

#include <algorithm>
#include <ctime>
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
  TimePoint annotationSeen{};
  bool latencyOpen = false;  // the annotation's tags have not been seen on the ENI yet
  std::string conditionStatus, conditionReason, conditionMessage;
  bool eligible() const {
    return hasAnnotation && !pod.hostNetwork && !pod.podIps.empty() && !pod.terminal() &&
           !pod.meta.deleting;
  }
};

namespace {

// The ENI manager's part of the node state (set through setAttachments and recordCreating): carried
// over whenever a tagger pass replaces the rest of it.
void moveEniManagerPart(NodeState& from, NodeState& to) {
  to.attachments = std::move(from.attachments);
  to.unownedEnis = std::move(from.unownedEnis);
  to.creating = std::move(from.creating);
}

}  // namespace

// ---------------------------------------------------------------- events in

Tagger::Tagger(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
               const Clock& clock, TaggerOptions options)
    : kube_(kube),
      ec2_(ec2),
      imds_(imds),
      scheduler_(scheduler),
      executor_(executor),
      clock_(clock),
      options_(std::move(options)),
      pass_(ec2, imds, options_, counters_) {}

Tagger::~Tagger() {
  if (passScheduled_) scheduler_.cancel(passTimer_);
  if (resyncArmed_) scheduler_.cancel(resyncTimer_);
  if (stateTimerArmed_) scheduler_.cancel(stateTimer_);
  if (kubeRetryArmed_) scheduler_.cancel(kubeRetryTimer_);
}

void Tagger::onPod(ChangeType type, const Json::Value& object) {
  auto pod = decodePod(object);
  if (!pod) return;
  const std::string key = pod->meta.ns + "/" + pod->meta.name;
  if (type == ChangeType::Deleted) {
    kubeRetryAt_.erase(key);
    if (pods_.erase(key) != 0) markDirty();
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
  view.latencyOpen = annotationChanged || old->second.latencyOpen;
  for (const auto& c : arrayField(objectField(object, "status"), "conditions")) {
    if (stringField(c, "type") == kTaggedCondition) {
      view.conditionStatus = stringField(c, "status");
      view.conditionReason = stringField(c, "reason");
      view.conditionMessage = stringField(c, "message");
    }
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
    markDirty();
}

void Tagger::onNode(ChangeType type, const Json::Value& object) {
  if (type == ChangeType::Deleted) return;
  auto node = decodeNode(object);
  if (!node) return;
  auto it = node->meta.annotations.find(kNodeStateAnnotation);
  const std::string shown = it == node->meta.annotations.end() ? "" : it->second;
  if (!stateLoaded_) return loadState(shown);
  // Later events: the annotation is this agent's record. Removed, or not one it wrote (the echo
  // of an earlier patch can arrive after a later one completed): write it again, or a restart
  // would miss what it owns.
  if (!newerState_.empty() || shown == stateWritten_) return;
  if (std::find(recentlyWritten_.begin(), recentlyWritten_.end(), shown) != recentlyWritten_.end())
    return;
  if (stateWritten_.empty() && shown.empty()) return;  // nothing written yet
  logWarn("the node state annotation was removed or changed by someone else, writing it again",
          {{"node", options_.nodeName}});
  stateWritten_.clear();
  scheduleStateWrite();
}

void Tagger::loadState(const std::string& text) {
  stateLoaded_ = true;
  if (text.empty()) return;
  auto state = decodeNodeState(text);
  if (state) {
    state_ = std::move(*state);
    stateWritten_ = text;
    logInfo("loaded node state", {{"node", options_.nodeName}, {"enis", state_.enis.size()}});
    return;
  }
  if (state.error().code == ErrorCode::Conflict) {
    // A rollback: the newer agent's record is neither trusted nor overwritten. This one runs cold
    // and writes no tag it could not record, until the newer version is back.
    newerState_ = state.error().message;
    logError(
        "the node state annotation was written by a newer eni-agent; not reading or "
        "overwriting it, and writing no tags: roll forward to that version",
        {{"node", options_.nodeName}, {"error", newerState_}});
    return;
  }
  logWarn("ignoring the node state annotation, starting cold",
          {{"node", options_.nodeName}, {"error", state.error().message}});
}

std::string Tagger::stateProblem() const {
  if (newerState_.empty()) return "";
  return "NewerVersion: the node's " + std::string(kNodeStateAnnotation) +
         " annotation: " + newerState_ + "; this one does not overwrite it and writes no tags";
}

void Tagger::start() {
  if (started_) return;
  started_ = true;
  stateLoaded_ = true;
  // A cold start reads the instance's ENIs once, to see whose tags are on them; a warm start
  // needs no EC2 read at all.
  resyncDue_ = state_.enis.empty();
  markDirty();
  scheduleResync(true);
}

void Tagger::resync() {
  resyncDue_ = true;
  markDirty();
  scheduleResync();
}

void Tagger::scheduleResync(bool afterStart) {
  // One timer at a time: a resync asked for early (tests, a future signal) replaces the pending
  // one.
  if (resyncArmed_) scheduler_.cancel(resyncTimer_);
  // After a start the first resync falls anywhere in a whole interval (0.5-1.5x): when a fleet
  // restarts at once (an upgrade), its reads then spread at nodes/interval per second, as in
  // steady state. With +-20% alone they would bunch into 0.4 of an interval, 2.5 times the rate.
  // No read comes sooner than half an interval after a restart.
  const auto jitter = afterStart ? std::uniform_real_distribution<double>(0.5, 1.5)(rng_)
                                 : std::uniform_real_distribution<double>(0.8, 1.2)(rng_);
  const auto delay = static_cast<double>(options_.resyncInterval.count()) * jitter;
  resyncArmed_ = true;
  resyncTimer_ = scheduler_.runAfter(Duration(static_cast<std::int64_t>(delay)), [this] {
    resyncArmed_ = false;
    resync();
  });
}

void Tagger::setAttachments(std::vector<AttachmentRecord> attachments,
                            std::vector<std::string> unownedEnis,
                            std::vector<std::string> creating) {
  if (attachments == state_.attachments && unownedEnis == state_.unownedEnis &&
      creating == state_.creating)
    return;
  state_.attachments = std::move(attachments);
  state_.unownedEnis = std::move(unownedEnis);
  state_.creating = std::move(creating);
  if (stateLoaded_) scheduleStateWrite();
}

void Tagger::recordCreating(std::vector<std::string> creating,
                            std::function<void(bool stored)> done) {
  // Before the node's annotation is loaded, a write would replace the previous run's record.
  if (!stateLoaded_) return done(false);
  state_.creating = std::move(creating);
  writeAheads_.push_back(std::move(done));
  writeState();
}

bool Tagger::idle() const {
  return !passRunning_ && !passScheduled_ && !dirty_ && kubeInFlight_ == 0;
}

void Tagger::markDirty() {
  dirty_ = true;
  if (started_ && !passRunning_ && !passScheduled_) schedulePass(options_.coalesceWindow);
}

void Tagger::schedulePass(Duration delay) {
  if (passScheduled_) return;
  passScheduled_ = true;
  passTimer_ = scheduler_.runAfter(delay, [this] {
    passScheduled_ = false;
    runPass();
  });
}

// ---------------------------------------------------------------- the pass

TagPassInput Tagger::snapshot() {
  TagPassInput in;
  in.state = state_;
  in.observed = observed_;
  // A write-ahead record (a restart, or a CreateTags that failed) needs a Describe to tell
  // whether its CreateTags landed.
  in.observeAll = resyncDue_ || std::any_of(state_.enis.begin(), state_.enis.end(),
                                            [](auto& e) { return e.second.hasPending(); });
  for (const auto& [key, view] : pods_) {
    if (!view.eligible()) continue;
    PodJob job;
    job.key = key;
    job.uid = view.pod.meta.uid;
    job.ns = view.pod.meta.ns;
    job.ip = view.pod.podIps.front();
    job.desired = parseTagAnnotation(view.annotation, options_.tagNamespace, view.pod.meta.ns);
    const auto& ann = view.pod.meta.annotations;
    if (auto it = ann.find(kLastAppliedTagsAnnotation); it != ann.end()) {
      if (auto parsed = parseTagAnnotation(it->second); parsed) job.lastApplied = *parsed;
    }
    if (auto it = ann.find(kLastAppliedHashAnnotation); it != ann.end())
      job.lastAppliedHash = it->second;
    if (auto it = ann.find(kPodEniAnnotation); it != ann.end()) job.podEniAnnotation = it->second;
    in.pods.push_back(std::move(job));
  }
  return in;
}

void Tagger::runPass() {
  if (passRunning_) return;
  passRunning_ = true;
  dirty_ = false;
  ++passes_;
  auto in = std::make_shared<TagPassInput>(snapshot());
  resyncDue_ = false;
  auto out = std::make_shared<TagPassOutput>();
  executor_.run(
      [this, in, out] {
        pass_.plan(*in, *out);
        // Without a CreateTags (nothing, or DeleteTags of owned keys only) there is no new
        // ownership to record ahead: write at once.
        if (options_.dryRun || !out->creates()) {
          pass_.write(*in, *out);
          out->written = true;
        }
      },
      [this, in, out] { afterPlan(in, out); });
}

void Tagger::afterPlan(const std::shared_ptr<TagPassInput>& in,
                       const std::shared_ptr<TagPassOutput>& out) {
  if (out->written) return finish(*in, *out);
  if (!newerState_.empty()) {
    // Nothing can be recorded: no CreateTags, and the pods say why (no retry: it stays so
    // until the newer version is back).
    for (auto& plan : out->plans) {
      if (!plan.toSet.empty()) withholdWrites(plan, out->state, stateProblem());
    }
    executor_.run([this, in, out] { pass_.write(*in, *out); },
                  [this, in, out] { finish(*in, *out); });
    return;
  }
  // Write-ahead: record the tags about to be created as pending on their ENIs, and send them only
  // once the node state holds that record. A kill after CreateTags then still leaves the record
  // of what the agent may own, for the restart to clean up if the pod is gone by then.
  for (const auto& plan : out->plans) {
    if (plan.toSet.empty()) continue;
    EniRecord& record = out->state.enis[plan.eniId];
    record.pendingHash = plan.hash;
    record.pendingKeys.clear();
    for (const auto& [k, v] : plan.toSet) {
      if (k != kHashTagKey) record.pendingKeys.push_back(k);
    }
  }
  NodeState before = state_;
  NodeState next = out->state;
  moveEniManagerPart(state_, next);
  state_ = std::move(next);
  auto failed = [this, in, out](NodeState previous) {
    // No tag was sent: forget the write-ahead and try the pass again later.
    logWarn("cannot record the write-ahead node state, tags not written, will retry",
            {{"node", options_.nodeName}, {"in_ms", options_.retryDelay.count()}});
    moveEniManagerPart(state_, previous);
    state_ = std::move(previous);
    passRunning_ = false;
    schedulePass(options_.retryDelay);
  };
  // The pass kept its plans within the budget; the ENI manager's part may have grown since.
  if (!encodeNodeState(state_)) return failed(std::move(before));
  writeAheads_.push_back([this, in, out, failed, before = std::move(before)](bool stored) mutable {
    if (!stored) return failed(std::move(before));
    executor_.run([this, in, out] { pass_.write(*in, *out); },
                  [this, in, out] { finish(*in, *out); });
  });
  writeState();
}

void Tagger::settleWriteAheads(std::vector<std::function<void(bool stored)>> waiting, bool stored) {
  for (auto& done : waiting) done(stored);
}

void Tagger::finish(TagPassInput& in, TagPassOutput& out) {
  (void)in;
  passRunning_ = false;
  moveEniManagerPart(state_, out.state);  // the ENI manager's, set meanwhile
  state_ = std::move(out.state);
  observed_ = std::move(out.observed);
  for (const auto& [key, verdict] : out.verdicts) {
    counters_.synced(verdict.reason);
    auto applied = out.appliedByPod.find(key);
    writePod(key, verdict, applied == out.appliedByPod.end() ? nullptr : &applied->second,
             out.wrotePods.count(key) != 0);
  }
  // Pods whose tags were cleaned up: drop their last-applied record, and k8s-eni-tagger's
  // finalizer once the cleanup is done.
  for (const auto& [key, view] : pods_) {
    const bool dropped = out.droppedPods.count(key) != 0;
    const auto& meta = view.pod.meta;
    const bool oldFinalizer = std::find(meta.finalizers.begin(), meta.finalizers.end(),
                                        kOldTaggerFinalizer) != meta.finalizers.end();
    if (meta.deleting && oldFinalizer &&
        memberEni(state_, key, meta.uid, view.pod.podIps.empty() ? "" : view.pod.podIps.front())
            .empty()) {
      Json::Value patch;
      Json::Value finalizers(Json::arrayValue);
      for (const auto& f : meta.finalizers) {
        if (f != kOldTaggerFinalizer) finalizers.append(f);
      }
      patch["metadata"]["finalizers"] = finalizers;
      patch["metadata"]["resourceVersion"] = meta.resourceVersion;  // conditional: no lost update
      kubeCall();
      kube_.patch(ObjectRef{ResourceKind::pods(), meta.ns, meta.name, ""}, PatchType::Merge, patch,
                  {}, [this, key](Result<Json::Value> r) {
                    if (r)
                      logInfo("removed k8s-eni-tagger's finalizer after cleanup", {{"pod", key}});
                    else if (r.error().code != ErrorCode::NotFound)
                      markDirty();
                    kubeDone();
                  });
    } else if (dropped && !meta.deleting &&
               meta.annotations.count(kLastAppliedHashAnnotation) != 0 && !view.eligible()) {
      Json::Value patch;
      patch["metadata"]["annotations"][kLastAppliedTagsAnnotation] = Json::Value();
      patch["metadata"]["annotations"][kLastAppliedHashAnnotation] = Json::Value();
      kubeCall();
      kube_.patch(ObjectRef{ResourceKind::pods(), meta.ns, meta.name, ""}, PatchType::Merge, patch,
                  {}, [this](Result<Json::Value>) { kubeDone(); });
    }
  }
  scheduleStateWrite();
  if (dirty_)
    schedulePass(options_.coalesceWindow);
  else if (out.retry)
    schedulePass(options_.retryDelay);
}

void Tagger::writePod(const std::string& key, const PodVerdict& verdict, const TagSet* applied,
                      bool wrote) {
  auto it = pods_.find(key);
  if (it == pods_.end()) return;
  PodView& view = it->second;
  const auto& meta = view.pod.meta;
  const ObjectRef ref{ResourceKind::pods(), meta.ns, meta.name, ""};

  bool newForPod = false;  // the pod's record of its applied tags is behind
  if (applied != nullptr) {
    const std::string json = tagsToJson(*applied);
    const std::string hash = tagHash(*applied);
    auto a = meta.annotations.find(kLastAppliedTagsAnnotation);
    auto h = meta.annotations.find(kLastAppliedHashAnnotation);
    newForPod = a == meta.annotations.end() || a->second != json || h == meta.annotations.end() ||
                h->second != hash;
    // One write per pod in flight, and none while a failed one backs off: a pass that ran
    // before the watch showed the last write would otherwise send it again, and a failure that
    // started the next pass at once fed a storm of 429s from the API server.
    if (newForPod && annotationWrites_.count(key) == 0 && !backingOff(key)) {
      Json::Value patch;
      patch["metadata"]["annotations"][kLastAppliedTagsAnnotation] = json;
      patch["metadata"]["annotations"][kLastAppliedHashAnnotation] = hash;
      kubeCall();
      annotationWrites_.insert(key);
      kube_.patch(ref, PatchType::Merge, patch, {}, [this, key, json, hash](Result<Json::Value> r) {
        annotationWrites_.erase(key);
        if (r) {
          // What the watch will show; until then the next pass need not write it.
          if (auto p = pods_.find(key); p != pods_.end()) {
            p->second.pod.meta.annotations[kLastAppliedTagsAnnotation] = json;
            p->second.pod.meta.annotations[kLastAppliedHashAnnotation] = hash;
          }
        } else if (r.error().code != ErrorCode::NotFound) {
          logWarn("cannot record last-applied tags on the pod, will retry",
                  {{"pod", key},
                   {"in_ms", options_.retryDelay.count()},
                   {"error", r.error().describe()}});
          kubeRetryAt_[key] = clock_.now() + options_.retryDelay;
          armKubeRetry();
        }
        kubeDone();
      });
    }
  }

  const std::string reason(toString(verdict.reason));
  const std::string status = verdict.reason == SyncReason::Synced ? "True" : "False";
  std::string message = verdict.message;
  if (message.empty()) message = "the ENI carries the pod's tags";
  if (verdict.reason == SyncReason::InvalidTags) {
    message = "annotation " + options_.annotationKey + " is invalid: " + verdict.message +
              ". Fix the annotation; the tags already applied stay as they were";
  }
  const bool conditionChanged = view.conditionStatus != status || view.conditionReason != reason ||
                                view.conditionMessage != message;
  if (conditionChanged && !backingOff(key)) {
    Json::Value condition;
    condition["type"] = kTaggedCondition;
    condition["status"] = status;
    condition["reason"] = reason;
    condition["message"] = message;
    condition["lastTransitionTime"] = nowRfc3339();
    Json::Value patch;
    patch["status"]["conditions"][0] = condition;
    view.conditionStatus = status;
    view.conditionReason = reason;
    view.conditionMessage = message;
    kubeCall();
    kube_.patch(ObjectRef{ResourceKind::pods(), meta.ns, meta.name, "status"}, PatchType::Strategic,
                patch, {}, [this, key](Result<Json::Value> r) {
                  if (!r && r.error().code != ErrorCode::NotFound) {
                    logWarn("cannot set the pod condition, will retry",
                            {{"pod", key},
                             {"in_ms", options_.retryDelay.count()},
                             {"error", r.error().describe()}});
                    // Forget what was sent, so the retry sends it again.
                    if (auto p = pods_.find(key); p != pods_.end()) {
                      p->second.conditionStatus.clear();
                      p->second.conditionReason.clear();
                      p->second.conditionMessage.clear();
                    }
                    kubeRetryAt_[key] = clock_.now() + options_.retryDelay;
                    armKubeRetry();
                  }
                  kubeDone();
                });
  }

  // One event per transition, and one per successful write.
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
  }
  // Synced gets an event per write; the others one per transition. DryRun gets none.
  static const std::map<SyncReason, const char*> kEvents = {
      {SyncReason::Synced, "TagsApplied"},
      {SyncReason::InvalidTags, "InvalidTags"},
      {SyncReason::Conflict, "HashConflict"},
      {SyncReason::EniLookupFailed, "ENILookupFailed"},
      {SyncReason::TaggingFailed, "TaggingFailed"}};
  const auto known = kEvents.find(verdict.reason);
  const bool emit = verdict.reason == SyncReason::Synced ? wrote : transition;
  const char* eventReason = (known != kEvents.end() && emit) ? known->second : nullptr;
  if (verdict.reason != SyncReason::Synced && transition) {
    logWarn("pod not tagged", {{"pod", key}, {"reason", reason}, {"message", message}});
  }
  if (eventReason == nullptr) return;
  Json::Value event;
  event["metadata"]["generateName"] = meta.name + ".";
  event["metadata"]["namespace"] = meta.ns;
  event["involvedObject"]["kind"] = "Pod";
  event["involvedObject"]["apiVersion"] = "v1";
  event["involvedObject"]["name"] = meta.name;
  event["involvedObject"]["namespace"] = meta.ns;
  event["involvedObject"]["uid"] = meta.uid;
  event["reason"] = eventReason;
  event["message"] = message;
  event["type"] = verdict.reason == SyncReason::Synced ? "Normal" : "Warning";
  event["source"]["component"] = "eni-agent";
  event["source"]["host"] = options_.nodeName;
  event["firstTimestamp"] = nowRfc3339();
  event["lastTimestamp"] = nowRfc3339();
  event["count"] = 1;
  kubeCall();
  kube_.create(ObjectRef{ResourceKind::events(), meta.ns, "", ""}, event,
               [this](Result<Json::Value> r) {
                 if (!r) logDebug("event not recorded", {{"error", r.error().describe()}});
                 kubeDone();
               });
}

void Tagger::scheduleStateWrite(std::optional<Duration> delay) {
  if (stateTimerArmed_ || !newerState_.empty()) return;
  auto encoded = encodeNodeState(state_);
  if (!encoded) {
    logError("node state does not fit its annotation; the warm cache will be incomplete",
             {{"error", encoded.error().message}});
    return;
  }
  if (*encoded == stateWritten_) return;
  stateTimerArmed_ = true;
  stateRetrying_ = delay.has_value();
  stateTimer_ = scheduler_.runAfter(delay.value_or(options_.stateDebounce), [this] {
    stateTimerArmed_ = false;
    stateRetrying_ = false;
    writeState();
  });
}

void Tagger::writeState() {
  if (!newerState_.empty()) return settleWriteAheads(std::exchange(writeAheads_, {}), false);
  // One patch at a time, so an older state never lands after a write-ahead: the one in flight
  // writes again when it completes. After a failure, the backoff's retry carries what comes.
  if (stateInFlight_ || stateRetrying_) return;
  auto encoded = encodeNodeState(state_);
  if (!encoded) return settleWriteAheads(std::exchange(writeAheads_, {}), false);
  if (*encoded == stateWritten_) return settleWriteAheads(std::exchange(writeAheads_, {}), true);
  Json::Value patch;
  patch["metadata"]["annotations"][kNodeStateAnnotation] = *encoded;
  const std::string text = *encoded;
  // The write-aheads whose state this patch carries; later ones wait for the next patch.
  auto carried = std::exchange(writeAheads_, {});
  stateInFlight_ = true;
  kubeCall();
  kube_.patch(ObjectRef{ResourceKind::nodes(), "", options_.nodeName, ""}, PatchType::Merge, patch,
              {}, [this, text, carried = std::move(carried)](Result<Json::Value> r) mutable {
                stateInFlight_ = false;
                settleWriteAheads(std::move(carried), static_cast<bool>(r));
                kubeDone();
                if (!r) {
                  // Jittered backoff, as the watches: a fleet whose API server is away must not
                  // come back to a storm of patches.
                  const Duration delay = stateBackoff_.next();
                  logWarn("cannot write the node state annotation, will retry",
                          {{"node", options_.nodeName},
                           {"in_ms", delay.count()},
                           {"error", r.error().describe()}});
                  return scheduleStateWrite(delay);
                }
                stateBackoff_.reset();
                stateWritten_ = text;
                recentlyWritten_.push_back(text);
                if (recentlyWritten_.size() > 4) recentlyWritten_.pop_front();
                // Write-aheads that came while this patch was in flight: their patch now.
                if (!writeAheads_.empty()) writeState();
                scheduleStateWrite();
              });
}

void Tagger::kubeCall() { ++kubeInFlight_; }
void Tagger::kubeDone() { --kubeInFlight_; }

bool Tagger::backingOff(const std::string& key) {
  auto it = kubeRetryAt_.find(key);
  if (it == kubeRetryAt_.end()) return false;
  if (clock_.now() >= it->second) {
    kubeRetryAt_.erase(it);
    return false;
  }
  armKubeRetry();
  return true;
}

void Tagger::armKubeRetry() {
  if (kubeRetryArmed_) return;
  kubeRetryArmed_ = true;
  kubeRetryTimer_ = scheduler_.runAfter(options_.retryDelay, [this] {
    kubeRetryArmed_ = false;
    markDirty();
  });
}

}  // namespace eni
