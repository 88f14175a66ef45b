#pragma once

// The tagger's pass as pure functions over what the pass observed (the I/O is TagPass's): the
// write-ahead settlement, which ENIs must be read, the verification of each pod's ENI, the desires
// per ENI with the --subnet-ids filter, the plans, the node-state budget, and the record of the
// writes' outcomes. No I/O and no logging: table-tested in tests/unit/tag_plan_test.cpp.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/planner.h"
#include "agent/eni/tags.h"
#include "agent/state/node_state.h"
#include "agent/tagger/resolver.h"

namespace eni {

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
  std::string hintedEni;  // k8s-eni-tagger's eni-tagger-cache names this ENI for it (unverified)
};

/// The ENI a pod is recorded on in `state` (same UID and IP), or "". Walks every ENI record.
std::string memberEni(const NodeState& state, const std::string& key, const std::string& uid,
                      const std::string& ip);

/// memberEni() for every pod of a pass: one walk of the ENI records, then a lookup per pod (the
/// same answer, the first ENI in ID order). Reads `state` as it was when made.
class MemberIndex {
 public:
  MemberIndex() = default;
  /// With `only`, of those ENIs' records alone (a scoped pass's ENIs: every record of its pods).
  explicit MemberIndex(const NodeState& state, const std::set<std::string>* only = nullptr);
  std::string eniOf(const std::string& key, const std::string& uid, const std::string& ip) const;
  /// Every ENI whose record lists the pod key, whatever UID and IP it records for it.
  std::vector<std::string> enisListing(const std::string& key) const;
  /// Re-indexes one ENI whose record changed: the pods `before` records leave, those `after`
  /// records join (either may be null: a record added or removed).
  void replace(const std::string& id, const EniRecord* before, const EniRecord* after);
  bool operator==(const MemberIndex&) const = default;

 private:
  // Pod key -> (ENI, record) for each ENI that records it, in ENI ID order.
  std::map<std::string, std::vector<std::pair<std::string, PodRecord>>> byPod_;
};

/// The node state as the loop thread hands it to each pass, with its ENI records' pods indexed.
/// Kept from one pass to the next and brought up to date by one walk that compares, copying and
/// re-indexing only the records that differ: a pass changes a few records of a node's hundred,
/// and a scoped pass then neither copies nor indexes the others (it copies its scope's).
class RecordView {
 public:
  /// Makes it `state`.
  void refresh(const NodeState& state);
  const NodeState& state() const { return state_; }
  /// Over every record of state().
  const MemberIndex& members() const { return members_; }
  /// The length of encodeNodeState(state()), kept as records change: each record's encoded size
  /// is worked out when it changes, not at every pass. Over kMaxBytes when the state is.
  std::size_t encodedSize() const;

 private:
  NodeState state_;
  MemberIndex members_;
  std::size_t restBytes_ = 0;    // encodeNodeState() of stateWithoutEnis(state_)
  std::size_t recordBytes_ = 0;  // the records' encodedEniRecordSize(), summed
};

/// What a scoped pass plans: the pods marked since the last pass, every ENI one of its pods is
/// recorded on (`members`, over `state`) or resolves to, and every pod recorded on one of those
/// ENIs, until nothing new is reached. Planning only these leaves every other ENI and pod as the
/// last pass left them: no pod outside shares an ENI with one inside.
struct PassScope {
  std::set<std::string> pods;  // pod keys
  std::set<std::string> enis;
  bool empty() const { return pods.empty() && enis.empty(); }
};
/// `resolve` is handed each pod of the scope once (in batches: the marked pods first) and answers
/// the ENI each resolves to; a pod it leaves out resolves to none.
using ScopeResolver =
    std::function<std::map<std::string, std::string>(const std::set<std::string>& keys)>;
PassScope reachOf(const std::set<std::string>& marked, const NodeState& state,
                  const MemberIndex& members, const ScopeResolver& resolve);

/// Pipelined passes: the part of a scope that must wait for the passes still in flight (whose
/// write-ahead or writes have not landed), whose records and pods are `busy`. A pod waits when it
/// is busy or is recorded on (`members`) or resolves to (`eniOf`) a busy ENI, and with it every
/// pod and ENI of the scope connected to it through such links: planning part of an ENI's pods
/// would drop the others from its record. Removes those from `scope` and answers the pods.
std::set<std::string> deferBusy(PassScope& scope, const PassScope& busy, const MemberIndex& members,
                                const std::map<std::string, ResolvedEni>& eniOf);

/// Turns `plan` into one that writes nothing and leaves the ENI's record as `state` has it; its
/// Synced pods get TaggingFailed with `why`, or no verdict at all when `why` is empty.
void withholdWrites(EniPlan& plan, const NodeState& state, const std::string& why);

/// An ENI as a Describe of this pass showed it.
struct SeenEni {
  TagSet tags;
  std::string subnet;
  std::vector<std::string> addresses;  // private IPv4s, IPv6s
  std::string notOurs;                 // why it is not this node's; "" when it is
  std::string interfaceType;           // interface, trunk, branch, ...
  std::size_t ipv4Count = 0;           // distinct private IPv4 addresses
  std::size_t ipv4Prefixes = 0;        // delegated IPv4 prefixes
  std::int64_t deviceIndex = -1;       // of its attachment; -1 when not attached
};

/// --shared-eni-tagging: which ENIs pods may get tags on.
enum class SharedEniPolicy {
  /// k8s-eni-tagger's rule: never an ENI with more than one private IPv4 or a delegated prefix,
  /// a trunk ENI, or the node's primary ENI (device index 0).
  Refuse,
  /// Pods sharing an ENI get the tags they agree on; never the primary ENI.
  Merge,
  /// Every ENI, without the hash and agreement checks (k8s-eni-tagger's
  /// --allow-shared-eni-tagging).
  Any,
};

/// Why `policy` refuses the ENI `r` names: "" when it may be tagged, std::nullopt when that cannot
/// be told without a Describe of it. Refuse judges by this pass's read (`seen`: addresses,
/// prefixes, type), else by the addresses IMDS listed for it (`r`); the device index comes from
/// either, or from the node state's `record`. `seen` and `record` may be null.
std::optional<std::string> sharedEniRefusal(const ResolvedEni& r, const SeenEni* seen,
                                            const EniRecord* record, SharedEniPolicy policy);

/// What a pass has read. Filled by TagPass's I/O, consumed by the pure functions below.
struct TagObservation {
  std::map<std::string, SeenEni> fresh;      // ENIs a Describe of this pass (or a fresh one) showed
  std::set<std::string> gone;                // asked for by ID, and EC2 has no such ENI
  bool describedAll = false;                 // the pass's observe-all Describe answered
  std::string readError;                     // the read before the writes failed with this
  std::map<std::string, ResolvedEni> eniOf;  // pod key -> its ENI, as resolved (unverified)
  std::map<std::string, PodVerdict> lookups;  // pods no source could place
  std::map<std::string, TagSet> observed;     // ENI tags: this pass's reads, else the cache
  bool retry = false;                         // an I/O step asks for another pass
};

struct TagPlanOptions {
  std::vector<std::string> subnetIds;  // empty: all
  SharedEniPolicy sharedEnis = SharedEniPolicy::Refuse;
  bool dryRun = false;
  // Record texts the budget's sizing of the whole state reuses and keeps (TagPass's own: one pass
  // at a time); none, and it encodes every record.
  EncodedEniRecords* sized = nullptr;
  // A scoped pass whose node state holds only its scope's records: the whole state, which the
  // budget sizes with the scope's records replaced by the pass's.
  const RecordView* whole = nullptr;
};

/// A pass's plan, and after write() its result.
struct TagPassOutput {
  NodeState state;
  /// ENI tags as EC2 last showed them, a cache the tagger hands each pass here (not copied) and
  /// takes back: TagPass adds what the pass read, recordWrites what it wrote.
  std::map<std::string, TagSet> observed;
  std::map<std::string, PodVerdict> verdicts;  // by pod key
  std::map<std::string, TagSet> appliedByPod;  // Synced pods: their own desired tags
  std::set<std::string> wrotePods;             // pods whose ENI got a write this pass
  std::set<std::string> droppedPods;           // members that left their ENI's record
  bool retry = false;
  std::map<std::string, ResolvedEni> eniOf;  // pod key -> its verified ENI
  std::vector<EniPlan> plans;
  /// What the plan decided that an operator should read: (message, ENI, detail), logged by the
  /// pass as warnings.
  std::vector<std::array<std::string, 3>> notes;
  bool written = false;  // write() ran right after plan(): no CreateTags, no write-ahead
  /// The records and pods this pass may change: its scope (a scoped pass), or every one (none).
  /// The tagger applies its records by this, so that passes in flight together keep apart.
  std::optional<PassScope> claimed;
  std::set<std::string> deferred;  // pods left for a later pass: they reach a busy ENI or pod
  std::vector<PodJob> pods;        // the pods the pass plans (its scope's, or every one)
  /// Whether a plan sends CreateTags: the pass then records its write-ahead before write().
  bool creates() const;
};

/// Write-ahead records (pendingHash/pendingKeys) against what the pass read: the CreateTags
/// landed when the ENI carries the pending hash, and then the agent owns the pending keys the ENI
/// carries; an ENI EC2 no longer has owns nothing; without a read, the record waits (`retry`).
/// Records of `busy` ENIs are left alone: the pass in flight that wrote them settles them.
void settleWriteAheads(NodeState& state, const TagObservation& obs, bool& retry,
                       const std::set<std::string>& busy = {});

/// Before the read of the ENIs a pass writes, or after it.
enum class PlanStage { BeforeRead, Final };

/// Plans the pass from `base` (the node state, instance-checked and settled) and what it
/// observed: plans nothing for an ENI seen not to be this node's (and at the Final stage drops its
/// record; before it, out.state is `base` unchanged), verifies each pod's ENI (its
/// source, this node's, holding the pod's IP, the subnet known for --subnet-ids), gathers each
/// ENI's desires (an invalid annotation keeps what was applied for a member; a pod whose ENI is
/// outside --subnet-ids or refused by --shared-eni-tagging gets EniValidationFailed and adds no
/// desire; a pod joining an ENI Refuse cannot judge unread gets EniLookupFailed), plans every
/// touched ENI with planEni, and notes the members that left. At the Final stage it also withholds
/// any write to an ENI the pass did not read and keeps the node state within its budget. With
/// `scope` (a scoped pass: `pods` are the scope's) only the scope's ENIs are planned; every other
/// record stays as `base` has it.
void planTags(const std::vector<PodJob>& pods, NodeState base, const TagObservation& obs,
              const TagPlanOptions& options, PlanStage stage, TagPassOutput& out,
              const std::set<std::string>* scope = nullptr);

/// The ENIs to read before the final plan, in one Describe: those the plan would write, those
/// named by a pod's pod-eni annotation (verified before anything else), those whose subnet
/// --subnet-ids needs, and under SharedEniPolicy::Refuse those a pod joins (is not yet a member
/// of) whose sharing is unknown; none that this pass already read. `scope` as for planTags.
std::set<std::string> enisToRead(const std::vector<PodJob>& pods, const TagPassOutput& planned,
                                 const TagObservation& obs, const TagPlanOptions& options,
                                 const std::set<std::string>* scope = nullptr);

/// How the writes to one ENI failed.
struct WriteFailure {
  std::string message;
  bool retryable = false;
  bool create = false;  // the CreateTags failed (else only the DeleteTags)
};

/// The record of the writes' outcomes: the verdicts (TaggingFailed where a write failed, DryRun
/// in a dry run), the ENI records (a CreateTags that landed with a failed DeleteTags is recorded
/// as such; a retryable CreateTags failure keeps its write-ahead for the next read), the pods'
/// memberships, and the tags EC2 now holds.
void recordWrites(const std::vector<PodJob>& pods,
                  const std::map<std::string, WriteFailure>& failed, const TagPlanOptions& options,
                  TagPassOutput& out);

}  // namespace eni
