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

namespace {}  // namespace

// ---------------------------------------------------------------- events in

Tagger::Tagger(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
               const Clock& clock, NodeStateStore& store, TaggerOptions options)
    : kube_(kube),
      executor_(executor),
      clock_(clock),
      store_(store),
      options_(std::move(options)),
      pass_(ec2, imds, options_, counters_),
      runner_(scheduler, {options_.coalesceWindow, options_.retryDelay},
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

void Tagger::start() {
  if (started_) return;
  started_ = true;
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

bool Tagger::idle() const { return runner_.idle() && kubeInFlight_ == 0 && store_.idle(); }

void Tagger::markDirty() { runner_.markDirty(); }

// ---------------------------------------------------------------- the pass

TagPassInput Tagger::snapshot() {
  TagPassInput in;
  in.state = store_.current();
  in.observed = observed_;
  // A write-ahead record (a restart, or a CreateTags that failed) needs a Describe to tell
  // whether its CreateTags landed.
  in.observeAll = resyncDue_ || std::any_of(in.state.enis.begin(), in.state.enis.end(),
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

void Tagger::runPass(PassRunner::Done done) {
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
      [this, in, out, done = std::move(done)]() mutable { afterPlan(in, out, std::move(done)); });
}

void Tagger::afterPlan(const std::shared_ptr<TagPassInput>& in,
                       const std::shared_ptr<TagPassOutput>& out, PassRunner::Done done) {
  if (out->written) return finish(*in, *out, std::move(done));
  if (const std::string problem = store_.problem(); !problem.empty()) {
    // Nothing can be recorded: no CreateTags, and the pods say why (no retry: it stays so
    // until the store can keep the state again).
    for (auto& plan : out->plans) {
      if (!plan.toSet.empty()) withholdWrites(plan, out->state, problem);
    }
    return writeThenFinish(in, out, std::move(done));
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
  auto before = store_.current().enis;
  store_.update([&](NodeState& s) {
    s.instanceId = out->state.instanceId;
    s.enis = out->state.enis;
  });
  store_.writeAhead(
      [this, in, out, before = std::move(before), done = std::move(done)](bool stored) mutable {
        if (stored) return writeThenFinish(in, out, std::move(done));
        // No tag was sent: forget the write-ahead and try the pass again later.
        logWarn("cannot record the write-ahead node state, tags not written, will retry",
                {{"node", options_.nodeName}, {"in_ms", options_.retryDelay.count()}});
        store_.update([&](NodeState& s) { s.enis = std::move(before); });
        done(true);
      });
}

void Tagger::writeThenFinish(const std::shared_ptr<TagPassInput>& in,
                             const std::shared_ptr<TagPassOutput>& out, PassRunner::Done done) {
  executor_.run(
      [this, in, out] { pass_.write(*in, *out); },
      [this, in, out, done = std::move(done)]() mutable { finish(*in, *out, std::move(done)); });
}

void Tagger::finish(TagPassInput& in, TagPassOutput& out, PassRunner::Done done) {
  (void)in;
  store_.update([&](NodeState& s) {
    s.instanceId = out.state.instanceId;
    s.enis = std::move(out.state.enis);
  });
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
        memberEni(store_.current(), key, meta.uid,
                  view.pod.podIps.empty() ? "" : view.pod.podIps.front())
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
  done(out.retry);
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

void Tagger::armKubeRetry() { kubeRetryTimer_.enableIfDisabled(options_.retryDelay); }

}  // namespace eni
