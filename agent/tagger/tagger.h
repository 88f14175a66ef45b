#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/backoff.h"
#include "agent/base/clock.h"
#include "agent/base/executor.h"
#include "agent/base/histogram.h"
#include "agent/eni/planner.h"
#include "agent/eni/tags.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/objects.h"
#include "agent/kube/reflector.h"
#include "agent/state/node_state.h"
#include "agent/tagger/resolver.h"
#include "agent/tagger/tag_pass.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

inline constexpr const char* kLastAppliedTagsAnnotation = "eni-tagger.io/last-applied-tags";
inline constexpr const char* kLastAppliedHashAnnotation = "eni-tagger.io/last-applied-hash";
inline constexpr const char* kPodEniAnnotation = "vpc.amazonaws.com/pod-eni";
inline constexpr const char* kTaggedCondition = "eni-tagger.io/tagged";
inline constexpr const char* kOldTaggerFinalizer = "eni-tagger.io/finalizer";

/// Tags the ENIs behind this node's pods from their annotation. Events only mark pods dirty; a
/// pass runs after the coalescing window: the loop thread snapshots the pods, the executor's
/// thread resolves ENIs (node-state cache, pod-eni annotation, IMDS, EC2), plans every touched
/// ENI and writes the tags, and the loop thread then patches pods and the node state.
/// One pass at a time. Loop thread only, but for the executor's work.
class Tagger {
 public:
  Tagger(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
         const Clock& clock, TaggerOptions options);
  ~Tagger();

  /// Wire these to the NodeView's reflectors.
  void onPod(ChangeType type, const Json::Value& object);
  void onNode(ChangeType type, const Json::Value& object);
  /// Call once the initial lists are in: the first pass runs, then resync timers start.
  void start();
  /// Runs a drift check now (the resync timer calls this).
  void resync();
  /// The ENI manager's attachments and the ENIs it saw to be unowned, recorded in the same
  /// node-state annotation.
  void setAttachments(std::vector<AttachmentRecord> attachments,
                      std::vector<std::string> unownedEnis = {},
                      std::vector<std::string> creating = {});
  /// The ENI manager's write-ahead: records `creating` (NodeENI names, see NodeState::creating)
  /// and calls `done(true)` once the node state holds it; `done(false)` when it could not be
  /// stored (then nothing may be created).
  void recordCreating(std::vector<std::string> creating, std::function<void(bool stored)> done);

  const NodeState& state() const { return state_; }
  /// Why the node state cannot be kept (a newer agent wrote it: "NewerVersion: ..."), for
  /// readiness; "" when it can.
  std::string stateProblem() const;
  const TaggerCounters& counters() const { return counters_; }
  /// No pass running or pending and no kube write in flight: tests wait for this.
  bool idle() const;
  std::uint64_t passes() const { return passes_; }

 private:
  struct PodView;

  void markDirty();
  void schedulePass(Duration delay);
  void scheduleResync(bool afterStart = false);
  void runPass();
  TagPassInput snapshot();
  // Between the plan and the tag writes: a pass that will send CreateTags first records the tags
  // it may come to own (write-ahead) in the node state, and sends them only once that is stored.
  void afterPlan(const std::shared_ptr<TagPassInput>& in,
                 const std::shared_ptr<TagPassOutput>& out);
  void settleWriteAheads(std::vector<std::function<void(bool stored)>> waiting, bool stored);
  void finish(TagPassInput& in, TagPassOutput& out);
  void writePod(const std::string& key, const PodVerdict& verdict, const TagSet* applied,
                bool wrote);
  void loadState(const std::string& text);
  /// Writes the node state after the debounce, or after `delay` (a retry).
  void scheduleStateWrite(std::optional<Duration> delay = std::nullopt);
  void writeState();
  void kubeCall();  // bookkeeping of in-flight kube writes
  void kubeDone();
  bool backingOff(const std::string& podKey);  // a failed pod write waits for its retry time
  void armKubeRetry();

  KubeApi& kube_;
  Ec2Api& ec2_;
  Imds& imds_;
  Scheduler& scheduler_;
  Executor& executor_;
  const Clock& clock_;
  TaggerOptions options_;
  TaggerCounters counters_;
  TagPass pass_;  // the executor's thread only

  std::map<std::string, PodView> pods_;
  std::set<std::string> annotationWrites_;        // pods whose last-applied patch is in flight
  std::map<std::string, TimePoint> kubeRetryAt_;  // pods whose failed write backs off
  bool kubeRetryArmed_ = false;
  TimerId kubeRetryTimer_{};
  NodeState state_;
  std::map<std::string, TagSet> observed_;  // ENI -> its tags as EC2 last showed them
  bool stateLoaded_ = false;
  std::string stateWritten_;
  std::map<std::string, std::pair<SyncReason, std::string>> reported_;  // last condition per pod
  bool started_ = false;
  bool passRunning_ = false;
  bool passScheduled_ = false;
  bool dirty_ = false;
  bool resyncDue_ = false;
  TimerId passTimer_ = 0;
  TimerId resyncTimer_ = 0;
  bool resyncArmed_ = false;
  TimerId stateTimer_ = 0;
  bool stateTimerArmed_ = false;
  bool stateInFlight_ = false;  // one node-state patch at a time, in order
  bool stateRetrying_ = false;  // the armed state timer is a retry after a failed patch
  Backoff stateBackoff_{Duration(500), Duration(30000)};
  std::deque<std::string> recentlyWritten_;  // the last patches' text: their echoes are not news
  std::string newerState_;  // why the annotation, written by a newer agent, is left alone
  // Write-aheads (the tagger's pass, the ENI manager) waiting for the next node-state patch.
  std::vector<std::function<void(bool stored)>> writeAheads_;
  int kubeInFlight_ = 0;
  std::uint64_t passes_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace eni
