#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/histogram.h"
#include "agent/eni/planner.h"
#include "agent/eni/tags.h"
#include "agent/state/node_state.h"
#include "agent/tagger/resolver.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

/// The tag the VPC resource controller puts on a branch ENI (security groups for pods): its trunk.
inline constexpr const char* kTrunkEniTag = "vpcresources.k8s.aws/trunk-eni-id";

struct TaggerOptions {
  std::string nodeName;
  std::string annotationKey = "eni-tagger.io/tags";
  TagNamespace tagNamespace;
  std::vector<std::string> subnetIds;  // empty: all
  bool allowSharedEniTagging = false;
  bool dryRun = false;
  Duration coalesceWindow{20};              // changes within it share one pass (and one CreateTags)
  Duration stateDebounce{500};              // node-state annotation writes
  Duration resyncInterval{30 * 60 * 1000};  // +-20% jitter; the first after start 0.5-1.5x
  Duration retryDelay{5000};  // after ENILookupFailed, TaggingFailed or a failed pod write
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

/// One eligible pod of a pass, as the loop thread saw it.
struct PodJob {
  std::string key;  // namespace/name
  std::string uid;
  std::string ns;
  std::string ip;
  Result<TagSet> desired = TagSet{};
  TagSet lastApplied;
  std::string lastAppliedHash;
  std::string podEniAnnotation;
};

/// Turns `plan` into one that writes nothing and leaves the ENI's record as `state` has it; its
/// Synced pods get TaggingFailed with `why`, or no verdict at all when `why` is empty.
void withholdWrites(EniPlan& plan, const NodeState& state, const std::string& why);

/// The ENI a pod is recorded on in `state` (same UID and IP), or "".
std::string memberEni(const NodeState& state, const std::string& key, const std::string& uid,
                      const std::string& ip);

struct TagPassInput {
  std::vector<PodJob> pods;
  NodeState state;
  std::map<std::string, TagSet> observed;  // ENI tags as EC2 last showed them (a cache)
  bool observeAll = false;                 // cold start, resync or a write-ahead to settle
};

struct TagPassOutput {
  NodeState state;
  std::map<std::string, TagSet> observed;
  std::map<std::string, PodVerdict> verdicts;  // by pod key
  std::map<std::string, TagSet> appliedByPod;  // Synced pods: their own desired tags
  std::set<std::string> wrotePods;             // pods whose ENI got a write this pass
  std::set<std::string> droppedPods;           // members that left their ENI's record
  bool retry = false;
  std::map<std::string, ResolvedEni> eniOf;  // pod key -> ENI
  std::vector<EniPlan> plans;
  bool written = false;  // write() ran right after plan(): no CreateTags, no write-ahead
  /// Whether a plan sends CreateTags: the pass then records its write-ahead before write().
  bool creates() const;
};

/// The tagger's pass on the AWS worker thread, in two steps: plan() observes (instance identity,
/// the Describes, IMDS) and plans every touched ENI; write() sends the coalesced writes and turns
/// their results into the new records and the pods' verdicts. Between the two the loop thread
/// records the write-ahead when the plans create tags.
///
/// What it trusts: a node-state record only while its instance ID is this instance's (IMDS) and the
/// ENI confirms it (its hash tag); an ENI only once a Describe of this pass shows it attached to
/// this instance or a branch of a trunk attached here, and, for the pod-eni annotation, holding the
/// pod's IP. Nothing is written to an ENI whose tags this pass has not read from EC2, and no tag is
/// written that the node-state annotation (64 KiB) could not record.
///
/// Worker thread only; it owns the caches it keeps between passes (the instance ID, the IMDS map).
class TagPass {
 public:
  TagPass(Ec2Api& ec2, Imds& imds, const TaggerOptions& options, TaggerCounters& counters)
      : ec2_(ec2), imds_(imds), resolver_(imds, ec2), options_(options), counters_(counters) {}

  void plan(const TagPassInput& in, TagPassOutput& out);
  void write(const TagPassInput& in, TagPassOutput& out);

 private:
  struct Seen {  // an ENI as a Describe of this pass showed it
    TagSet tags;
    std::string subnet;
    std::vector<std::string> addresses;  // private IPv4s, IPv6s
    std::string notOurs;                 // why it is not this node's; "" when it is
  };
  struct Fresh {
    std::map<std::string, Seen> enis;
    std::set<std::string> gone;  // asked for by ID, and EC2 has no such ENI
    bool describedAll = false;   // the pass's observeAll Describe succeeded
  };
  struct WriteFailure {
    std::string message;
    bool retryable = false;
    bool create = false;  // the CreateTags failed (else only the DeleteTags)
  };
  using Desires = std::map<std::string, std::vector<PodDesire>>;

  bool identify(TagPassOutput& out, bool& cold);
  void observeAll(TagPassOutput& out, Fresh& fresh, bool cold);
  void see(const NetworkInterface& eni, TagPassOutput& out, Fresh& fresh);
  std::string whyNotOurs(const NetworkInterface& eni);
  void settlePending(TagPassOutput& out, const Fresh& fresh);
  void resolve(const TagPassInput& in, TagPassOutput& out, Fresh& fresh);
  std::string recordedSubnet(const TagPassOutput& out, const ResolvedEni& r) const;
  std::set<std::string> toRead(const TagPassOutput& out, const Fresh& fresh) const;
  /// One Describe of `ids`; the error, or "" when it answered.
  std::string read(const std::set<std::string>& ids, TagPassOutput& out, Fresh& fresh);
  void verify(const TagPassInput& in, TagPassOutput& out, const Fresh& fresh,
              const std::string& readError);
  std::string eniProblem(const PodJob& job, const ResolvedEni& r, const Fresh& fresh,
                         const std::string& readError) const;
  Desires desires(const TagPassInput& in, TagPassOutput& out, bool final);
  std::vector<EniPlan> planAll(const TagPassOutput& out, const Desires& wanted) const;
  void keepToWhatWasRead(TagPassOutput& out, const Fresh& fresh);
  void fitBudget(const TagPassInput& in, TagPassOutput& out);
  std::map<std::string, WriteFailure> send(const std::vector<EniPlan>& plans);
  void recordPlan(const EniPlan& plan, const std::map<std::string, WriteFailure>& failed,
                  TagPassOutput& out);
  PodVerdict dryRunVerdict(const EniPlan& plan, const std::string& podKey) const;
  void recordMembers(const TagPassInput& in, const std::map<std::string, WriteFailure>& failed,
                     TagPassOutput& out);

  Ec2Api& ec2_;
  Imds& imds_;
  EniResolver resolver_;
  const TaggerOptions& options_;
  TaggerCounters& counters_;
  std::string instanceId_;  // this instance, from IMDS
};

}  // namespace eni
