#include "agent/tagger/planner.h"

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

/// What the agent owns before this plan: its record, or what the pods' own annotations prove it
/// (or k8s-eni-tagger) applied.
void currentOwnership(const EniInput& in, TagSet& owned, std::string& hash) {
  if (in.record != nullptr) {
    owned = in.record->tags;
    hash = in.record->hash;
    return;
  }
  for (const auto& pod : in.pods) {
    if (pod.lastAppliedHash.empty() || tagHash(pod.lastApplied) != pod.lastAppliedHash) return;
    if (!hash.empty() && hash != pod.lastAppliedHash) return;
    hash = pod.lastAppliedHash;
    owned = pod.lastApplied;
  }
  if (in.observed != nullptr) {
    // Adopt only what the ENI really carries.
    auto it = in.observed->find(kHashTagKey);
    if (it == in.observed->end() || it->second != hash) {
      owned.clear();
      hash.clear();
    }
  }
}

}  // namespace

EniPlan planEni(const EniInput& in, const PlanOptions& options) {
  EniPlan plan;
  plan.eniId = in.eniId;
  TagSet owned;
  std::string ownedHash;
  currentOwnership(in, owned, ownedHash);

  // Merge the pods' tags; keys they disagree on are conflicts.
  std::map<std::string, std::map<std::string, std::vector<std::string>>>
      wants;  // key -> value -> pods
  for (const auto& pod : in.pods) {
    for (const auto& [k, v] : pod.tags) wants[k][v].push_back(pod.key);
  }
  TagSet merged;
  std::map<std::string, std::string> conflictOf;  // pod -> message
  for (const auto& [key, byValue] : wants) {
    if (byValue.size() == 1 || options.allowSharedEniTagging) {
      merged[key] = byValue.begin()->first;
      continue;
    }
    std::string who;
    for (const auto& [value, pods] : byValue) {
      for (const auto& p : pods) who += (who.empty() ? "" : ", ") + p + " wants \"" + value + "\"";
    }
    for (const auto& [value, pods] : byValue) {
      for (const auto& p : pods) {
        conflictOf[p] = "pods sharing ENI " + in.eniId + " disagree on tag " + key + " (" + who +
                        "); give them the same value or move them to different ENIs";
      }
    }
    if (auto it = owned.find(key); it != owned.end()) merged[key] = it->second;
  }

  // Keys someone else set on the ENI are never overwritten.
  if (in.observed != nullptr && !options.allowSharedEniTagging) {
    for (auto it = merged.begin(); it != merged.end();) {
      auto seen = in.observed->find(it->first);
      if (owned.count(it->first) == 0 && seen != in.observed->end() && seen->second != it->second) {
        for (const auto& pod : in.pods) {
          if (pod.tags.count(it->first) != 0) {
            conflictOf[pod.key] = "ENI " + in.eniId + " already has " + it->first + "=" +
                                  seen->second +
                                  ", set by someone else; eni-agent does not overwrite tags it did "
                                  "not apply";
          }
        }
        it = merged.erase(it);
      } else {
        ++it;
      }
    }
  }
  const std::string desiredHash = merged.empty() ? "" : tagHash(merged);

  // Seed scenario 8: whose hash is on the ENI?
  if (in.observed != nullptr && !options.allowSharedEniTagging) {
    auto it = in.observed->find(kHashTagKey);
    const std::string onEni = it == in.observed->end() ? "" : it->second;
    if (!onEni.empty() && onEni != desiredHash && onEni != ownedHash) {
      plan.owned = owned;
      plan.hash = ownedHash;
      for (const auto& pod : in.pods) {
        plan.verdicts.push_back({pod.key, SyncReason::Conflict,
                                 "ENI " + in.eniId + " carries " + kHashTagKey + "=" + onEni +
                                     ", which eni-agent did not write: another tool tags it. Stop "
                                     "that tool or remove its tags, or set "
                                     "--allow-shared-eni-tagging"});
      }
      return plan;
    }
  }

  TagDiff diff = diffTags(owned, merged);
  if (in.observed != nullptr) {
    for (const auto& [k, v] : merged) {  // drift: owned tags missing or changed on the ENI
      auto seen = in.observed->find(k);
      if (seen == in.observed->end() || seen->second != v) diff.toSet[k] = v;
    }
  }
  const bool hashOnEniStale = in.observed != nullptr && [&] {
    auto it = in.observed->find(kHashTagKey);
    return (it == in.observed->end() ? "" : it->second) != desiredHash;
  }();
  if (!diff.empty() || desiredHash != ownedHash || hashOnEniStale) {
    plan.toSet = diff.toSet;
    plan.toDelete = diff.toDelete;
    if (desiredHash.empty()) {
      if (!ownedHash.empty() || hashOnEniStale) plan.toDelete.push_back(kHashTagKey);
    } else {
      plan.toSet[kHashTagKey] = desiredHash;
    }
  }
  plan.owned = merged;
  plan.hash = desiredHash;
  for (const auto& pod : in.pods) {
    auto c = conflictOf.find(pod.key);
    if (c != conflictOf.end()) {
      plan.verdicts.push_back({pod.key, SyncReason::Conflict, c->second});
    } else {
      plan.verdicts.push_back({pod.key, SyncReason::Synced, ""});
    }
  }
  return plan;
}

std::vector<TagWrite> coalesceWrites(const std::vector<EniPlan>& plans) {
  std::map<TagSet, std::vector<std::string>> creates;
  std::map<std::vector<std::string>, std::vector<std::string>> deletes;
  for (const auto& p : plans) {
    if (!p.toSet.empty()) creates[p.toSet].push_back(p.eniId);
    if (!p.toDelete.empty()) {
      std::vector<std::string> keys = p.toDelete;
      std::sort(keys.begin(), keys.end());
      deletes[keys].push_back(p.eniId);
    }
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
  for (const auto& [keys, ids] : deletes) {
    TagSet asTags;
    for (const auto& k : keys) asTags[k] = "";
    chunked(false, ids, asTags);
  }
  return out;
}

}  // namespace eni
