#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/eni/tags.h"
#include "agent/state/node_state.h"

namespace eni {

/// The reason of the pod condition eni-tagger.io/tagged.
enum class SyncReason { Synced, InvalidTags, EniLookupFailed, Conflict, TaggingFailed, DryRun };
std::string_view toString(SyncReason reason);

/// One pod that wants tags on an ENI now: eligible, valid annotation, resolved.
struct PodDesire {
  std::string key;  // namespace/name
  std::string uid;
  std::string ip;
  TagSet tags;                  // desired, namespaced and validated
  TagSet lastApplied;           // the pod's eni-tagger.io/last-applied-tags (adoption)
  std::string lastAppliedHash;  // the pod's eni-tagger.io/last-applied-hash
};

/// Everything the planner needs about one ENI.
struct EniInput {
  std::string eniId;
  const EniRecord* record = nullptr;  // what this agent owns on it now, if anything
  const TagSet* observed = nullptr;   // its actual tags, when a Describe told us; else unknown
  std::vector<PodDesire> pods;        // may be empty: then every owned tag goes
};

struct PodVerdict {
  std::string podKey;
  SyncReason reason = SyncReason::Synced;
  std::string message;
};

/// The writes for one ENI and what the agent owns once they succeed.
struct EniPlan {
  std::string eniId;
  TagSet toSet;      // CreateTags, the hash tag included when anything changes
  TagSet toDelete;   // DeleteTags: each key with the value the agent wrote, so that EC2 removes it
                     // only while the ENI still holds that value
  TagSet owned;      // the record's tags after the writes
  std::string hash;  // tagHash(owned), empty when nothing is owned
  std::vector<PodVerdict> verdicts;  // one per pod of the input
  bool writes() const { return !toSet.empty() || !toDelete.empty(); }
};

struct PlanOptions {
  bool allowSharedEniTagging = false;
};

/// Plans one ENI. Pure.
/// - Ownership: the record's tags count only while the ENI carries the record's hash (when its
///   tags are known): a record the ENI does not confirm (stale, or forged) owns nothing, so nothing
///   is removed on its account.
/// - The pods' tags are merged; a key they disagree on is a Conflict for the pods that want it,
///   and keeps its owned value (the check is off with allowSharedEniTagging; the first pod in key
///   order wins).
/// - The hash matrix on the ENI's observed hash (k8s-eni-tagger's rule): empty, the desired hash or
///   the owned hash mean go ahead; anything else is a Conflict for every pod and no write (unless
///   allowSharedEniTagging).
/// - A key on the ENI that the agent does not own is never overwritten or removed.
/// - EC2 allows 50 tags per ENI: the merged tags, the keys others set and the hash must fit, or
///   the pods get InvalidTags and nothing is written.
/// - Adoption: with no record, pods whose last-applied annotations agree with their hash count as
///   owned (k8s-eni-tagger migration), so an ENI already tagged so costs no write.
/// - Drift: with observed tags, owned tags missing or changed on the ENI are written again, and a
///   removal is sent only for keys the ENI still holds with the owned value.
EniPlan planEni(const EniInput& input, const PlanOptions& options);

/// One CreateTags or DeleteTags call for several ENIs that need the same change.
struct TagWrite {
  bool create = true;  // false: DeleteTags
  std::vector<std::string> resources;
  TagSet tags;  // DeleteTags: each key with the value it must still have to be removed
};
/// Groups the plans' writes: ENIs that need an identical tag set share one call (up to 1000
/// resources each).
std::vector<TagWrite> coalesceWrites(const std::vector<EniPlan>& plans);

}  // namespace eni
