#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/executor.h"
#include "agent/base/histogram.h"
#include "agent/base/pass_runner.h"
#include "agent/base/timer.h"
#include "agent/eni/planner.h"
#include "agent/eni/tags.h"
#include "agent/kube/event_recorder.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/objects.h"
#include "agent/kube/pod_condition_writer.h"
#include "agent/kube/reflector.h"
#include "agent/state/node_state.h"
#include "agent/state/node_state_store.h"
#include "agent/tagger/eni_tagger_cache.h"
#include "agent/tagger/resolver.h"
#include "agent/tagger/tag_pass.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

inline constexpr const char* kLastAppliedTagsAnnotation = kLastAppliedTagsKey;
inline constexpr const char* kLastAppliedHashAnnotation = kLastAppliedHashKey;
inline constexpr const char* kPodEniAnnotation = "vpc.amazonaws.com/pod-eni";
inline constexpr const char* kTaggedCondition = kTaggedConditionType;
inline constexpr const char* kOldTaggerFinalizer = "eni-tagger.io/finalizer";

/// Tags the ENIs behind this node's pods from their annotation. Events only mark pods dirty; a
/// pass (one PassRunner) runs after the coalescing window and plans the pods marked since the last
/// one with their ENIs' neighbours (every pod at the start, at a resync, after a retry; reachOf):
/// the loop thread snapshots the pods, the executor's thread observes and plans (TagPass::plan),
/// the node state records the write-ahead of any CreateTags, the executor's thread writes
/// (TagPass::write), and the loop thread then patches the pods and updates its slice of the node
/// state (`instanceId`, `enis`) in the store. Passes pipeline: once a scoped pass's plan is made
/// and its write-ahead is on its way, the next one may start; it leaves to a later pass the pods
/// and ENIs connected to what the passes in flight claimed (deferBusy), and each pass changes only
/// the records it claimed. A pass of every pod, or one that reads every ENI, runs alone. Loop
/// thread only, but for the executor's work.
class Tagger {
 public:
  Tagger(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
         const Clock& clock, NodeStateStore& store, TaggerOptions options);
  ~Tagger();

  /// Wire to the NodeView's pod reflector.
  void onPod(ChangeType type, const Json::Value& object);
  /// Call once the initial lists are in (the store is loaded then): k8s-eni-tagger's ConfigMap is
  /// read when options.eniTaggerCacheNamespace says where, then the first pass runs and the resync
  /// timer starts.
  void start();
  /// Runs a drift check now (the resync timer calls this).
  void resync();

  /// The node state as the store holds it.
  const NodeState& state() const;
  const TaggerCounters& counters() const { return counters_; }
  /// No pass running or pending and no kube write in flight: tests wait for this.
  bool idle() const;
  std::uint64_t passes() const { return runner_.passes(); }

 private:
  struct PodView;
  struct Pass;

  void begin();
  /// k8s-eni-tagger's eni-tagger-cache, as the get answered: hints by pod IP, or none.
  void takeEniTaggerCache(const Result<Json::Value>& configMap);
  /// A pass of every pod (start, resync, retries, a write backing off).
  void markDirty();
  /// A pass of the pod's scope: the pod, the ENIs it is or will be on, their pods.
  void markPod(const std::string& key);
  void scheduleResync(bool afterStart = false);
  void runPass(PassRunner::Done done);
  /// What the passes in flight claimed: the next pass leaves it alone.
  PassScope busy() const;
  /// Whether a write-ahead record outside `busy` waits to be settled by a read.
  bool unsettledRecords(const std::set<std::string>& busy) const;
  TagPassInput snapshot(PassScope busy);
  /// The pod's PodJob, made again when its view changed since (an eligible pod's view).
  void refreshJob(const std::string& key, PodView& view);
  // Between the plan and the tag writes: a pass that will send CreateTags first records the tags
  // it may come to own (write-ahead) in the node state, and sends them only once that is stored.
  // For ENIs its records, IMDS or EC2 name, that patch goes out while the pass reads them (early),
  // and counts only when the final plan writes exactly what it records.
  void recordEarly(std::uint64_t seq, const TagPassOutput& first);
  void earlyWriteAhead(std::uint64_t seq, const std::string& instanceId,
                       std::map<std::string, EniRecord> enis,
                       std::map<std::string, EniRecord> early,
                       const std::optional<std::set<std::string>>& claim);
  void onEarlyWriteAhead(Pass& pass, bool stored);
  bool coveredEarly(const Pass& pass) const;
  void afterPlan(Pass& pass);
  /// A scoped pass whose write-ahead is on its way goes on in flight (flying_), and the runner
  /// may start the next one.
  void release(Pass& pass);
  void onWriteAhead(Pass& pass, bool stored);
  void writeThenFinish(Pass& pass);
  void finish(Pass& pass);
  /// The end of a pass, written or not: the deferred pods, its retry, and the runner.
  void end(Pass& pass, bool retry);
  void remarkDeferred();
  /// Once the plan is made, before the write-ahead: the pods on ENIs the pass does not write.
  void reportUnwritten(Pass& pass);
  /// At debug: where the pass's time went (waiting, planning and reading, the write-ahead, the
  /// writes), for a slow pass to be told apart from a long queue.
  void logPass(const Pass& pass) const;
  /// Last-applied records of pods whose tags were removed, and k8s-eni-tagger's finalizer.
  void cleanUpPods(const std::set<std::string>& dropped);
  /// The pod's condition and, when they are behind `applied`, its last-applied annotations: one
  /// write when both are due.
  void writePod(const std::string& key, const PodVerdict& verdict, const TagSet* applied,
                bool wrote);
  /// The last-applied annotations, with `condition` when not null (which view.condition then
  /// holds until the write fails).
  void writeLastApplied(const std::string& key, PodView& view, const std::string& json,
                        const std::string& hash, const PodCondition* condition);
  std::string conditionMessage(const PodVerdict& verdict) const;
  void writeCondition(const std::string& key, PodView& view, const PodCondition& wanted);
  /// The latency sample, the log line and the event of a verdict.
  void report(const std::string& key, PodView& view, const PodVerdict& verdict,
              const std::string& message, bool wrote, bool newForPod);
  bool backingOff(const std::string& podKey);  // a failed pod write waits for its retry time
  void backOff(const std::string& podKey);     // ... from now

  KubeApi& kube_;
  Executor& executor_;
  const Clock& clock_;
  NodeStateStore& store_;
  TaggerOptions options_;
  TaggerCounters counters_;
  TagPass pass_;  // the executor's thread only
  PodConditionWriter podWriter_;
  EventRecorder events_;
  PassRunner runner_;
  std::unique_ptr<Pass> current_;  // the pass the runner runs: planning, or writing alone
  // Scoped passes whose write-ahead or writes are still in flight, beside current_ (by seq). Their
  // claims are disjoint: each next pass defers what reaches one of them.
  std::map<std::uint64_t, std::unique_ptr<Pass>> flying_;
  // The node state as the last pass was handed it (TagPassInput::records), kept up to date.
  std::shared_ptr<RecordView> records_;
  PassRunner::Done held_;           // a pass that must run alone, due once flying_ has landed
  std::set<std::string> deferred_;  // pods passes left for later: marked when one in flight ends
  bool retryAsked_ = false;         // a pass in flight asked for a retry: the runner's next done
  std::uint64_t passSeq_ = 0;       // the last pass's Pass::seq
  Timer resyncTimer_;
  Timer kubeRetryTimer_;

  std::map<std::string, PodView> pods_;
  // What the next pass plans: every pod, or the scope of these (and of the unsettled ones).
  bool markAll_ = true;
  std::set<std::string> marked_;
  std::set<std::string> unsettled_;  // pods whose last verdict failed: judged by every pass
  std::map<std::string, EniTaggerCacheEntry> hints_;  // by pod IP; each given to one pass once
  std::set<std::string> annotationWrites_;            // pods whose last-applied patch is in flight
  std::map<std::string, TimePoint> kubeRetryAt_;      // pods whose failed write backs off
  std::map<std::string, std::pair<SyncReason, std::string>> reported_;  // last condition per pod
  bool started_ = false;
  bool resyncDue_ = false;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace eni
