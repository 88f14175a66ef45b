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
#include "agent/base/histogram.h"
#include "agent/eni/planner.h"
#include "agent/eni/tags.h"
#include "agent/state/node_state.h"
#include "agent/tagger/resolver.h"
#include "agent/tagger/tag_plan.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

/// The tag the VPC resource controller puts on a branch ENI (security groups for pods): its trunk.
inline constexpr const char* kTrunkEniTag = "vpcresources.k8s.aws/trunk-eni-id";

struct TaggerOptions {
  std::string nodeName;
  std::string annotationKey = "eni-tagger.io/tags";
  TagNamespace tagNamespace;
  std::vector<std::string> subnetIds;                    // empty: all
  SharedEniPolicy sharedEnis = SharedEniPolicy::Refuse;  // --shared-eni-tagging
  bool dryRun = false;
  Duration coalesceWindow{20};              // changes within it share one pass (and one CreateTags)
  Duration resyncInterval{30 * 60 * 1000};  // +-20% jitter; the first after start 0.5-1.5x
  Duration retryDelay{5000};  // after ENILookupFailed, TaggingFailed or a failed pod write
  /// How long what a Describe showed of an ENI counts as read for a write to it (unless the agent
  /// wrote to it since): a burst's passes share the read of the instance's own ENIs.
  Duration readFreshFor{1000};
  /// Where k8s-eni-tagger's ConfigMap eni-tagger-cache is read once at start; empty: not read.
  std::string eniTaggerCacheNamespace;
};

/// What the tagger did, for metrics and tests. Thread-safe.
class TaggerCounters {
 public:
  void resolved(ResolveSource source, std::uint64_t n = 1);
  void synced(SyncReason result);
  void syncLatency(Duration d);
  void reconcileError();
  std::uint64_t resolveSource(ResolveSource source) const;
  std::uint64_t syncResult(SyncReason result) const;
  std::uint64_t reconcileErrors() const;
  /// The most recent latencies (at most 1024) and the histogram of all of them.
  std::vector<Duration> latencies() const;
  Histogram latencyHistogram() const;
  std::map<ResolveSource, std::uint64_t> resolveSources() const;
  std::map<SyncReason, std::uint64_t> syncResults() const;

 private:
  mutable std::mutex mutex_;
  std::map<ResolveSource, std::uint64_t> sources_;
  std::map<SyncReason, std::uint64_t> results_;
  std::uint64_t errors_ = 0;
  std::vector<Duration> latencies_;
  Histogram histogram_;
};

struct TagPassInput {
  /// Every eligible pod, as the loop thread keeps them between its changes (shared, not copied per
  /// pass), in key order; the pass copies the ones it plans into TagPassOutput::pods.
  std::vector<std::shared_ptr<const PodJob>> pods;
  /// The node state (the loop thread's RecordView, shared, not copied). The pass copies what it
  /// plans from it: a scoped pass its scope's records, any other pass every record. It lets go of
  /// it when plan() returns: the loop thread then brings it up to date for the next pass.
  std::shared_ptr<const RecordView> records;
  bool observeAll = false;  // cold start, resync or a write-ahead to settle
  /// A scoped pass: the pods marked since the last pass (keys; also pods now gone), of which the
  /// pass plans only the scope (reachOf). Every pod and ENI when empty, and whenever the pass reads
  /// every ENI.
  std::optional<std::set<std::string>> marked;
  /// What the passes still in flight claimed (their scopes, TagPassOutput::claimed): a scoped
  /// pass leaves the part of its scope connected to them for a later pass (deferBusy). Only a
  /// scoped pass runs beside others.
  PassScope busy;
};

/// The tagger's pass on the AWS worker thread: the I/O around the pure functions of tag_plan.h.
/// plan() observes (instance identity, the Describes, IMDS) and plans (planTags, twice: before and
/// after the one read of the ENIs it would write); write() applies (the coalesced CreateTags and
/// DeleteTags) and records (recordWrites). Between the two the loop thread records the
/// write-ahead when the plans create tags.
///
/// What it trusts: a node-state record only while its instance ID is this instance's (IMDS) and the
/// ENI confirms it (its hash tag); an ENI only once a Describe shows it attached to this instance
/// or a branch of a trunk attached here, and, for the pod-eni annotation, holding the pod's IP: a
/// Describe of this pass, or one within readFreshFor that no write of ours to the ENI followed
/// (recall). Nothing is written to an ENI whose tags such a Describe has not shown, and no tag is
/// written that the node-state annotation (64 KiB) could not record.
///
/// Worker thread only; it owns the caches it keeps between passes (the instance ID, the IMDS map,
/// the ENI tags last seen), which passes in flight together share: their jobs run one at a time.
class TagPass {
 public:
  TagPass(Ec2Api& ec2, Imds& imds, const Clock& clock, const TaggerOptions& options,
          TaggerCounters& counters)
      : ec2_(ec2),
        imds_(imds),
        clock_(clock),
        resolver_(imds, ec2),
        options_(options),
        counters_(counters) {}

  /// `beforeRead`, when given, sees the first plan (made from what is known) just before the read
  /// of the ENIs it would write, while that read and the final plan are still to come: the tagger
  /// records its write-ahead then, so the node-state patch and the Describe overlap.
  /// It takes in.records (out.state is made from it).
  void plan(TagPassInput& in, TagPassOutput& out,
            const std::function<void(const TagPassOutput&)>& beforeRead = {});
  void write(TagPassOutput& out);

 private:
  /// Checks the records' instance (`whole`'s) against this instance's; `cold` when they are
  /// another's, and out.state then holds none.
  bool identify(const NodeState& whole, TagPassOutput& out, bool& cold);
  void observeAll(NodeState& state, TagObservation& obs, bool cold);
  void see(const NetworkInterface& eni, TagObservation& obs);
  std::string whyNotOurs(const NetworkInterface& eni);
  /// The pods a pass plans, resolved, in out.pods: in a scoped pass its scope's (the ENIs in
  /// out.claimed), less what reaches in.busy (left to a later pass: out.deferred); otherwise every
  /// pod of `in`. `state` is the node state the pass plans from; with `view` (a scoped pass whose
  /// `state` holds no records yet) the scope is found in the view's records and index, and its
  /// records are copied into `state`.
  void scope(const TagPassInput& in, NodeState& state, const RecordView* view, TagObservation& obs,
             TagPassOutput& out);
  void resolve(const std::vector<const PodJob*>& jobs, const MemberIndex& members,
               const NodeState& state, TagObservation& obs);
  /// What Describes showed within options_.readFreshFor, as read by this pass.
  void recall(TagObservation& obs);
  void read(const std::set<std::string>& ids, TagObservation& obs);
  std::map<std::string, WriteFailure> send(const std::vector<EniPlan>& plans);
  TagPlanOptions planOptions();

  Ec2Api& ec2_;
  Imds& imds_;
  const Clock& clock_;
  EniResolver resolver_;
  const TaggerOptions& options_;
  TaggerCounters& counters_;
  std::string instanceId_;  // this instance, from IMDS
  // ENIs as a Describe showed them, and when; dropped once written to or older than readFreshFor.
  std::map<std::string, std::pair<SeenEni, TimePoint>> recent_;
  EncodedEniRecords sized_;  // the plan's sizing of the node state reuses these (planOptions)
  /// ENI tags as EC2 last showed them: each plan starts from them and adds its reads, each write
  /// what it wrote (TagPassOutput::observed while it records). Passes in flight together share it.
  std::map<std::string, TagSet> observed_;
};

}  // namespace eni
