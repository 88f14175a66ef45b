#include "agent/eni/planner.h"

#include <algorithm>
#include <map>
#include <set>

namespace eni {

std::string_view toString(SyncReason reason) {
  switch (reason) {
    case SyncReason::Synced:
      return "Synced";
    case SyncReason::InvalidTags:
      return "InvalidTags";
    case SyncReason::EniLookupFailed:
      return "ENILookupFailed";
    case SyncReason::Conflict:
      return "Conflict";
    case SyncReason::TaggingFailed:
      return "TaggingFailed";
    case SyncReason::DryRun:
      return "DryRun";
  }
  return "Synced";
}

namespace {

std::string hashOn(const TagSet* observed) {
  if (observed == nullptr) return "";
  auto it = observed->find(kHashTagKey);
  return it == observed->end() ? "" : it->second;
}

/// Whether the ENI confirms the record: its hash tag is the record's (unknown tags confirm
/// nothing yet, and the caller reads them before any write).
bool confirmed(const EniInput& in) {
  return in.record != nullptr && (in.observed == nullptr || hashOn(in.observed) == in.record->hash);
}

/// What the agent owns before this plan: its record while the ENI confirms it, or what the pods'
/// own annotations prove it (or k8s-eni-tagger) applied.
void currentOwnership(const EniInput& in, TagSet& owned, std::string& hash) {
  if (in.record != nullptr) {
    if (confirmed(in)) {
      owned = in.record->tags;
      hash = in.record->hash;
    }
    return;
  }
  for (const auto& pod : in.pods) {
    if (pod.lastAppliedHash.empty() || tagHash(pod.lastApplied) != pod.lastAppliedHash) return;
    if (!hash.empty() && hash != pod.lastAppliedHash) return;
    hash = pod.lastAppliedHash;
    owned = pod.lastApplied;
  }
  if (in.observed != nullptr && hashOn(in.observed) != hash) {
    owned.clear();  // adopt only what the ENI really carries
    hash.clear();
  }
}

struct Merge {
  TagSet tags;
  std::map<std::string, std::string> conflictOf;  // pod -> message
};

/// The pods' tags merged; keys they disagree on are conflicts and keep their owned value.
Merge mergeDesires(const EniInput& in, const TagSet& owned, const PlanOptions& options) {
  std::map<std::string, std::map<std::string, std::vector<std::string>>> wants;  // k -> v -> pods
  for (const auto& pod : in.pods) {
    for (const auto& [k, v] : pod.tags) wants[k][v].push_back(pod.key);
  }
  Merge out;
  for (const auto& [key, byValue] : wants) {
    if (byValue.size() == 1 || options.allowSharedEniTagging) {
      out.tags[key] = byValue.begin()->first;
      continue;
    }
    std::string who;
    for (const auto& [value, pods] : byValue) {
      for (const auto& p : pods) who += (who.empty() ? "" : ", ") + p + " wants \"" + value + "\"";
    }
    for (const auto& [value, pods] : byValue) {
      for (const auto& p : pods) {
        out.conflictOf[p] = "pods sharing ENI " + in.eniId + " disagree on tag " + key + " (" +
                            who + "); give them the same value or move them to different ENIs";
      }
    }
    if (auto it = owned.find(key); it != owned.end()) out.tags[key] = it->second;
  }
  return out;
}

/// Keys someone else set on the ENI with another value are never overwritten.
void dropForeignKeys(const EniInput& in, const TagSet& owned, Merge& merge) {
  for (auto it = merge.tags.begin(); it != merge.tags.end();) {
    auto seen = in.observed->find(it->first);
    if (owned.count(it->first) != 0 || seen == in.observed->end() || seen->second == it->second) {
      ++it;
      continue;
    }
    for (const auto& pod : in.pods) {
      if (pod.tags.count(it->first) == 0) continue;
      merge.conflictOf[pod.key] = "ENI " + in.eniId + " already has " + it->first + "=" +
                                  seen->second +
                                  ", set by someone else; eni-agent does not overwrite tags it did "
                                  "not apply";
    }
    it = merge.tags.erase(it);
  }
}

/// EC2 keeps at most 50 tags on an ENI: the merged tags, the ones others set and the hash.
/// Returns the message for the pods when they do not fit, else "".
std::string overTagLimit(const EniInput& in, const TagSet& owned, const TagSet& merged) {
  if (merged.empty()) return "";
  std::size_t foreign = 0;
  for (const auto& [k, v] : *in.observed) {
    if (k != kHashTagKey && owned.count(k) == 0 && merged.count(k) == 0) ++foreign;
  }
  const std::size_t total = merged.size() + foreign + 1;
  if (total <= TagLimits::kMaxTagsPerEni) return "";
  const std::size_t room =
      TagLimits::kMaxTagsPerEni - 1 > foreign ? TagLimits::kMaxTagsPerEni - 1 - foreign : 0;
  return "ENI " + in.eniId + " carries " + std::to_string(foreign) +
         " tags that eni-agent did not apply; with the " + std::to_string(merged.size()) +
         " tags its pods want and " + kHashTagKey + " that makes " + std::to_string(total) +
         ", over EC2's limit of 50 per ENI, so only " + std::to_string(room) +
         " of the pods' tags fit; remove tags from the annotation or from the ENI";
}

/// Every pod of the input gets `reason`; the record stays as it was.
EniPlan refuseAll(const EniInput& in, const TagSet& owned, const std::string& ownedHash,
                  SyncReason reason, const std::string& message) {
  EniPlan plan;
  plan.eniId = in.eniId;
  // A conflict leaves ownership unchanged while pods still want the ENI; without pods a record
  // the ENI no longer confirms is dropped (nothing of it can be removed safely).
  const bool keepRecord = in.record != nullptr && !in.pods.empty();
  plan.owned = keepRecord ? in.record->tags : owned;
  plan.hash = keepRecord ? in.record->hash : ownedHash;
  for (const auto& pod : in.pods) plan.verdicts.push_back({pod.key, reason, message});
  return plan;
}

/// The writes from `owned` to `merged`: changed and missing keys (drift), removals of keys the
/// ENI still holds with the owned value, and the hash.
void planWrites(const EniInput& in, const TagSet& owned, const std::string& ownedHash,
                const TagSet& merged, const std::string& desiredHash, EniPlan& plan) {
  TagDiff diff = diffTags(owned, merged);
  TagSet toDelete;
  for (const auto& key : diff.toDelete) {
    const std::string& value = owned.at(key);
    if (in.observed != nullptr) {
      auto seen = in.observed->find(key);
      if (seen == in.observed->end() || seen->second != value) continue;  // not ours any more
    }
    toDelete[key] = value;
  }
  if (in.observed != nullptr) {
    for (const auto& [k, v] : merged) {  // drift: owned tags missing or changed on the ENI
      auto seen = in.observed->find(k);
      if (seen == in.observed->end() || seen->second != v) diff.toSet[k] = v;
    }
  }
  const std::string onEni = in.observed != nullptr ? hashOn(in.observed) : ownedHash;
  if (diff.toSet.empty() && toDelete.empty() && onEni == desiredHash) return;
  plan.toSet = std::move(diff.toSet);
  plan.toDelete = std::move(toDelete);
  if (!desiredHash.empty()) {
    plan.toSet[kHashTagKey] = desiredHash;
  } else if (!onEni.empty()) {
    plan.toDelete[kHashTagKey] = onEni;
  }
}

}  // namespace

EniPlan planEni(const EniInput& in, const PlanOptions& options) {
  TagSet owned;
  std::string ownedHash;
  currentOwnership(in, owned, ownedHash);
  Merge merge = mergeDesires(in, owned, options);
  if (in.observed != nullptr && !options.allowSharedEniTagging) {
    dropForeignKeys(in, owned, merge);
    // Whose hash is on the ENI? Empty, the desired or the owned one: go ahead.
    const std::string onEni = hashOn(in.observed);
    const std::string desired = merge.tags.empty() ? "" : tagHash(merge.tags);
    if (!onEni.empty() && onEni != desired && onEni != ownedHash) {
      return refuseAll(in, owned, ownedHash, SyncReason::Conflict,
                       "ENI " + in.eniId + " carries " + kHashTagKey + "=" + onEni +
                           ", which eni-agent did not write: another tool tags it. Stop that "
                           "tool or remove its tags, or set --allow-shared-eni-tagging");
    }
  }
  if (in.observed != nullptr) {
    if (auto over = overTagLimit(in, owned, merge.tags); !over.empty())
      return refuseAll(in, owned, ownedHash, SyncReason::InvalidTags, over);
  }
  EniPlan plan;
  plan.eniId = in.eniId;
  const std::string desiredHash = merge.tags.empty() ? "" : tagHash(merge.tags);
  planWrites(in, owned, ownedHash, merge.tags, desiredHash, plan);
  plan.owned = merge.tags;
  plan.hash = desiredHash;
  for (const auto& pod : in.pods) {
    auto c = merge.conflictOf.find(pod.key);
    plan.verdicts.push_back(c != merge.conflictOf.end()
                                ? PodVerdict{pod.key, SyncReason::Conflict, c->second}
                                : PodVerdict{pod.key, SyncReason::Synced, ""});
  }
  return plan;
}

std::vector<TagWrite> coalesceWrites(const std::vector<EniPlan>& plans) {
  std::map<TagSet, std::vector<std::string>> creates;
  std::map<TagSet, std::vector<std::string>> deletes;
  for (const auto& p : plans) {
    if (!p.toSet.empty()) creates[p.toSet].push_back(p.eniId);
    if (!p.toDelete.empty()) deletes[p.toDelete].push_back(p.eniId);
  }
  std::vector<TagWrite> out;
  auto chunked = [&out](bool create, const std::vector<std::string>& ids, const TagSet& tags) {
    for (std::size_t i = 0; i < ids.size(); i += 1000) {
      TagWrite w;
      w.create = create;
      w.resources.assign(ids.begin() + static_cast<long>(i),
                         ids.begin() + static_cast<long>(std::min(ids.size(), i + 1000)));
      w.tags = tags;
      out.push_back(std::move(w));
    }
  };
  for (const auto& [tags, ids] : creates) chunked(true, ids, tags);
  for (const auto& [tags, ids] : deletes) chunked(false, ids, tags);
  return out;
}

}  // namespace eni
