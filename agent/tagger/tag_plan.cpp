#include "agent/tagger/tag_plan.h"

#include <algorithm>
#include <optional>
#include <utility>

namespace eni {

std::string memberEni(const NodeState& state, const std::string& key, const std::string& uid,
                      const std::string& ip) {
  for (const auto& [id, record] : state.enis) {
    auto it = record.pods.find(key);
    if (it != record.pods.end() && it->second.uid == uid && it->second.ip == ip) return id;
  }
  return {};
}

MemberIndex::MemberIndex(const NodeState& state, const std::set<std::string>* only) {
  auto add = [&](const std::string& id, const EniRecord& record) {
    for (const auto& [key, pod] : record.pods) byPod_[key].emplace_back(id, pod);
  };
  if (only == nullptr) {
    for (const auto& [id, record] : state.enis) add(id, record);
    return;
  }
  for (const auto& id : *only) {
    if (auto record = state.enis.find(id); record != state.enis.end()) add(id, record->second);
  }
}

std::string MemberIndex::eniOf(const std::string& key, const std::string& uid,
                               const std::string& ip) const {
  auto it = byPod_.find(key);
  if (it == byPod_.end()) return {};
  for (const auto& [id, pod] : it->second) {
    if (pod.uid == uid && pod.ip == ip) return id;
  }
  return {};
}

void MemberIndex::replace(const std::string& id, const EniRecord* before, const EniRecord* after) {
  if (before != nullptr) {
    for (const auto& [key, pod] : before->pods) {
      auto it = byPod_.find(key);
      if (it == byPod_.end()) continue;
      auto& enis = it->second;
      std::erase_if(enis, [&](const auto& e) { return e.first == id; });
      if (enis.empty()) byPod_.erase(it);
    }
  }
  if (after != nullptr) {
    for (const auto& [key, pod] : after->pods) {
      auto& enis = byPod_[key];
      auto at = std::lower_bound(enis.begin(), enis.end(), id,
                                 [](const auto& e, const std::string& v) { return e.first < v; });
      enis.emplace(at, id, pod);
    }
  }
}

void RecordView::refresh(const NodeState& state) {
  const bool restChanged = restBytes_ == 0 || state_.instanceId != state.instanceId ||
                           state_.attachments != state.attachments ||
                           state_.unownedEnis != state.unownedEnis ||
                           state_.creating != state.creating;
  if (restChanged) {
    NodeState rest = stateWithoutEnis(state);
    // Small (a few NodeENI attachments); past the budget only when someone else wrote it so.
    auto restText = encodeNodeState(rest);
    restBytes_ = restText ? restText->size() : NodeState::kMaxBytes + 1;
    rest.enis.swap(state_.enis);  // the records are brought up to date below
    state_ = std::move(rest);
  }
  auto have = state_.enis.begin();
  auto want = state.enis.begin();
  while (have != state_.enis.end() || want != state.enis.end()) {
    if (want == state.enis.end() || (have != state_.enis.end() && have->first < want->first)) {
      members_.replace(have->first, &have->second, nullptr);
      recordBytes_ -= encodedEniRecordSize(have->first, have->second);
      have = state_.enis.erase(have);
    } else if (have == state_.enis.end() || want->first < have->first) {
      members_.replace(want->first, nullptr, &want->second);
      recordBytes_ += encodedEniRecordSize(want->first, want->second);
      state_.enis.emplace_hint(have, want->first, want->second);
      ++want;
    } else {
      if (!(have->second == want->second)) {
        members_.replace(have->first, &have->second, &want->second);
        recordBytes_ -= encodedEniRecordSize(have->first, have->second);
        recordBytes_ += encodedEniRecordSize(want->first, want->second);
        have->second = want->second;
      }
      ++have;
      ++want;
    }
  }
}

std::size_t RecordView::encodedSize() const {
  const std::size_t commas = state_.enis.empty() ? 0 : state_.enis.size() - 1;
  return restBytes_ + recordBytes_ + commas;
}

std::vector<std::string> MemberIndex::enisListing(const std::string& key) const {
  std::vector<std::string> out;
  if (auto it = byPod_.find(key); it != byPod_.end()) {
    for (const auto& [id, pod] : it->second) out.push_back(id);
  }
  return out;
}

PassScope reachOf(const std::set<std::string>& marked, const NodeState& state,
                  const MemberIndex& members, const ScopeResolver& resolve) {
  PassScope scope;
  std::set<std::string> batch;  // pods reached and not yet resolved
  auto reachEni = [&](const std::string& id, std::set<std::string>& next) {
    if (!scope.enis.insert(id).second) return;
    auto record = state.enis.find(id);
    if (record == state.enis.end()) return;
    for (const auto& [key, pod] : record->second.pods) {
      if (scope.pods.insert(key).second) next.insert(key);
    }
  };
  for (const auto& key : marked) {
    if (scope.pods.insert(key).second) batch.insert(key);
  }
  while (!batch.empty()) {
    std::set<std::string> next;
    for (const auto& key : batch) {
      for (const auto& id : members.enisListing(key)) reachEni(id, next);
    }
    for (const auto& [key, id] : resolve(batch)) {
      if (!id.empty() && batch.count(key) != 0) reachEni(id, next);
    }
    batch = std::move(next);
  }
  return scope;
}

std::set<std::string> deferBusy(PassScope& scope, const PassScope& busy, const MemberIndex& members,
                                const std::map<std::string, ResolvedEni>& eniOf) {
  std::set<std::string> deferred;
  if (busy.empty()) return deferred;
  // The scope as a graph: each pod to the ENIs it is recorded on or resolves to, and back.
  std::map<std::string, std::vector<std::string>> enisOf;
  std::map<std::string, std::vector<std::string>> podsOn;
  for (const auto& key : scope.pods) {
    auto& enis = enisOf[key];
    enis = members.enisListing(key);
    if (auto r = eniOf.find(key); r != eniOf.end()) enis.push_back(r->second.eniId);
    for (const auto& id : enis) podsOn[id].push_back(key);
  }
  // Everything connected to a busy ENI or pod waits.
  std::set<std::string> blocked;
  std::vector<std::string> enis;  // blocked ENIs whose pods are still to visit
  auto block = [&](const std::string& id) {
    if (blocked.insert(id).second) enis.push_back(id);
  };
  auto defer = [&](const std::string& key) {
    if (!deferred.insert(key).second) return;
    for (const auto& id : enisOf[key]) block(id);
  };
  for (const auto& id : scope.enis) {
    if (busy.enis.count(id) != 0) block(id);
  }
  for (const auto& key : scope.pods) {
    if (busy.pods.count(key) != 0) defer(key);
  }
  while (!enis.empty()) {
    const std::string id = std::move(enis.back());
    enis.pop_back();
    for (const auto& key : podsOn[id]) defer(key);
  }
  for (const auto& key : deferred) scope.pods.erase(key);
  for (const auto& id : blocked) scope.enis.erase(id);
  return deferred;
}

void withholdWrites(EniPlan& plan, const NodeState& state, const std::string& why) {
  plan.toSet.clear();
  plan.toDelete.clear();
  auto record = state.enis.find(plan.eniId);
  plan.owned = record == state.enis.end() ? TagSet{} : record->second.tags;
  plan.hash = record == state.enis.end() ? "" : record->second.hash;
  if (why.empty()) {
    plan.verdicts.clear();
    return;
  }
  for (auto& v : plan.verdicts) {
    if (v.reason != SyncReason::Synced) continue;
    v.reason = SyncReason::TaggingFailed;
    v.message = why;
  }
}

bool TagPassOutput::creates() const {
  return std::any_of(plans.begin(), plans.end(), [](const EniPlan& p) { return !p.toSet.empty(); });
}

void settleWriteAheads(NodeState& state, const TagObservation& obs, bool& retry,
                       const std::set<std::string>& busy) {
  for (auto& [id, record] : state.enis) {
    if (!record.hasPending() || busy.count(id) != 0) continue;
    auto seen = obs.fresh.find(id);
    if (seen == obs.fresh.end()) {
      if (!obs.describedAll) {
        retry = true;  // unknown still: left alone until a Describe tells
        continue;
      }
      record.clearPending();  // the ENI is gone: it owns nothing
      continue;
    }
    const TagSet& tags = seen->second.tags;
    auto hash = tags.find(kHashTagKey);
    if (!record.pendingHash.empty() && hash != tags.end() && hash->second == record.pendingHash) {
      for (const auto& key : record.pendingKeys) {
        if (auto on = tags.find(key); on != tags.end()) record.tags[key] = on->second;
      }
      record.hash = record.pendingHash;
    }
    record.clearPending();
  }
}

std::optional<std::string> sharedEniRefusal(const ResolvedEni& r, const SeenEni* seen,
                                            const EniRecord* record, SharedEniPolicy policy) {
  if (policy == SharedEniPolicy::Any) return "";
  std::int64_t device = seen != nullptr ? seen->deviceIndex : -1;
  if (device < 0) device = r.deviceIndex;
  if (device < 0 && record != nullptr) device = record->deviceIndex;
  if (device == 0) {
    return r.eniId +
           " is the node's primary ENI (device index 0), which k8s-eni-tagger never tagged; "
           "--shared-eni-tagging=any tags it";
  }
  if (policy == SharedEniPolicy::Merge) return "";
  std::size_t ipv4s = 0, prefixes = 0;
  if (seen != nullptr) {
    ipv4s = seen->ipv4Count;
    prefixes = seen->ipv4Prefixes;
  } else if (r.ipv4Count >= 0 && r.ipv4Prefixes >= 0) {
    // IMDS lists the addresses of the instance's own interfaces, not their type; a trunk holds
    // no pod's IP (its pods are on branch ENIs, always read), so the count is enough here.
    ipv4s = static_cast<std::size_t>(r.ipv4Count);
    prefixes = static_cast<std::size_t>(r.ipv4Prefixes);
  } else {
    return std::nullopt;
  }
  if (ipv4s > 1 || prefixes > 0) {
    const std::string holds = prefixes > 0 ? std::to_string(prefixes) + " delegated IPv4 prefix(es)"
                                           : std::to_string(ipv4s) + " private IPv4 addresses";
    return r.eniId + " holds " + holds +
           ", so pods may share it; eni-agent does not tag a shared ENI under "
           "--shared-eni-tagging=refuse (the default, k8s-eni-tagger's rule); "
           "--shared-eni-tagging=merge tags it with the tags its pods agree on";
  }
  if (seen != nullptr && seen->interfaceType == "trunk") {
    return r.eniId +
           " is a trunk ENI, shared by the branch ENIs of the node's pods; eni-agent does not tag "
           "it under --shared-eni-tagging=refuse (the default, k8s-eni-tagger's rule)";
  }
  return "";
}

namespace {

using Desires = std::map<std::string, std::vector<PodDesire>>;

const SeenEni* seenOf(const TagObservation& obs, const std::string& id) {
  auto it = obs.fresh.find(id);
  return it == obs.fresh.end() ? nullptr : &it->second;
}

const EniRecord* recordOf(const NodeState& state, const std::string& id) {
  auto it = state.enis.find(id);
  return it == state.enis.end() ? nullptr : &it->second;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

/// Why the pod may not add its desire to the ENI `r` names, or "": the ENI outside --subnet-ids
/// (once its subnet is known), or refused by --shared-eni-tagging. `unknown` when Refuse cannot
/// judge an ENI the pod joins.
PodVerdict eniValidation(const PodJob& job, const ResolvedEni& r, const std::string& subnet,
                         const TagObservation& obs, const TagPlanOptions& options,
                         const TagPassOutput& out, const MemberIndex& members) {
  const auto& ids = options.subnetIds;
  if (!ids.empty() && std::find(ids.begin(), ids.end(), subnet) == ids.end()) {
    // Unknown subnet: the read of this pass tells, and verify() reports a failed one.
    if (subnet.empty()) return {job.key, SyncReason::EniLookupFailed, ""};
    return {job.key, SyncReason::EniValidationFailed,
            r.eniId + " is in subnet " + subnet + ", which is not in --subnet-ids (" + joined(ids) +
                "); eni-agent tags only the ENIs in those subnets"};
  }
  auto refusal =
      sharedEniRefusal(r, seenOf(obs, r.eniId), recordOf(out.state, r.eniId), options.sharedEnis);
  if (refusal && !refusal->empty()) return {job.key, SyncReason::EniValidationFailed, *refusal};
  // A member was judged when it joined (the drift check judges it again).
  if (!refusal && members.eniOf(job.key, job.uid, job.ip) != r.eniId) {
    return {job.key, SyncReason::EniLookupFailed,
            "cannot read " + r.eniId +
                " from EC2 to tell whether it is shared (--shared-eni-tagging=refuse); will retry"};
  }
  return {job.key, SyncReason::Synced, ""};
}

std::string sourceName(ResolveSource source) {
  switch (source) {
    case ResolveSource::PodAnnotation:
      return "the pod's vpc.amazonaws.com/pod-eni annotation";
    case ResolveSource::Imds:
      return "IMDS";
    case ResolveSource::Ec2:
      return "EC2";
    case ResolveSource::Cache:
      return "the node state";
    case ResolveSource::EniTaggerCache:
      return "k8s-eni-tagger's ConfigMap eni-tagger-cache";
  }
  return "the node state";
}

/// A source anyone who may edit a pod (or the ConfigMap) may have written: its ENI is read and
/// checked before anything else.
bool isHint(ResolveSource source) {
  return source == ResolveSource::PodAnnotation || source == ResolveSource::EniTaggerCache;
}

std::string subnetOf(const NodeState& state, const ResolvedEni& r) {
  if (!r.subnet.empty()) return r.subnet;
  auto record = state.enis.find(r.eniId);
  return record == state.enis.end() ? "" : record->second.subnet;
}

/// Why the pod's ENI may not be acted on, or "".
std::string eniProblem(const PodJob& job, const ResolvedEni& r, const TagObservation& obs,
                       const TagPlanOptions& options) {
  const std::string from = sourceName(r.source);
  auto seen = obs.fresh.find(r.eniId);
  if (seen == obs.fresh.end()) {
    if (obs.gone.count(r.eniId) != 0)
      return from + " names " + r.eniId + " for " + job.ip +
             ", but EC2 has no such ENI; will retry";
    if (!obs.readError.empty())
      return "cannot read " + r.eniId + " from EC2 before tagging it: " + obs.readError +
             "; will retry";
    return "";  // not read this pass, and not written either
  }
  if (!seen->second.notOurs.empty()) {
    return from + " names " + r.eniId + " for " + job.ip + ", but " + seen->second.notOurs +
           "; eni-agent tags only the ENIs of its own node";
  }
  const auto& addresses = seen->second.addresses;
  if (isHint(r.source) &&
      std::find(addresses.begin(), addresses.end(), job.ip) == addresses.end()) {
    return from + " names " + r.eniId + " for " + job.ip + ", but that ENI does not hold " +
           job.ip + "; eni-agent tags only the ENI that holds the pod's IP";
  }
  if (!options.subnetIds.empty() && r.subnet.empty() && seen->second.subnet.empty()) {
    return "cannot tell the subnet of " + r.eniId + " to apply --subnet-ids; will retry";
  }
  return "";
}

/// Records of ENIs that are not this node's: nothing may be done on their account.
void dropForeignRecords(const TagObservation& obs, TagPassOutput& out) {
  for (auto it = out.state.enis.begin(); it != out.state.enis.end();) {
    auto seen = obs.fresh.find(it->first);
    if (seen == obs.fresh.end() || seen->second.notOurs.empty()) {
      ++it;
      continue;
    }
    out.notes.push_back(
        {"ignoring the record of an ENI that is not this node's", it->first, seen->second.notOurs});
    it = out.state.enis.erase(it);
  }
}

/// Each pod's ENI, verified against what the pass read.
void verify(const std::vector<PodJob>& pods, const TagObservation& obs,
            const TagPlanOptions& options, TagPassOutput& out) {
  out.eniOf = obs.eniOf;
  for (const auto& [key, verdict] : obs.lookups) out.verdicts[key] = verdict;
  for (const auto& job : pods) {
    auto it = out.eniOf.find(job.key);
    if (it == out.eniOf.end()) continue;
    ResolvedEni& r = it->second;
    const std::string problem = eniProblem(job, r, obs, options);
    if (problem.empty()) {
      if (auto seen = obs.fresh.find(r.eniId); seen != obs.fresh.end() && r.subnet.empty())
        r.subnet = seen->second.subnet;
      continue;
    }
    out.verdicts[job.key] = {job.key, SyncReason::EniLookupFailed, problem};
    // A missing or unreadable ENI may come right (IMDS refreshes, EC2 answers); a foreign one
    // does not until the pod changes. A false eni-tagger-cache hint is spent: the retry looks the
    // pod up without it.
    if (obs.fresh.count(r.eniId) == 0 || r.source == ResolveSource::EniTaggerCache)
      out.retry = true;
    out.eniOf.erase(it);
  }
}

Desires gatherDesires(const std::vector<PodJob>& pods, const TagObservation& obs,
                      const TagPlanOptions& options, PlanStage stage,
                      const std::set<std::string>* scope, TagPassOutput& out) {
  Desires wanted;
  // The loop changes records' MACs and subnets, never their members.
  const MemberIndex members(out.state, scope);
  for (const auto& job : pods) {
    if (!job.desired) {
      // Invalid now: keep what was applied for it, if it is a member.
      out.verdicts[job.key] = {job.key, SyncReason::InvalidTags, job.desired.error().message};
      const std::string eni = members.eniOf(job.key, job.uid, job.ip);
      if (!eni.empty() && !job.lastAppliedHash.empty()) {
        wanted[eni].push_back(
            {job.key, job.uid, job.ip, job.lastApplied, job.lastApplied, job.lastAppliedHash});
      }
      continue;
    }
    auto it = out.eniOf.find(job.key);
    if (it == out.eniOf.end()) continue;
    const ResolvedEni& r = it->second;
    const std::string subnet = subnetOf(out.state, r);
    PodVerdict valid = eniValidation(job, r, subnet, obs, options, out, members);
    if (valid.reason != SyncReason::Synced) {
      // Before the read, an unknown is what the read is for; after it, the pod is told.
      if (stage == PlanStage::Final && !valid.message.empty()) {
        if (valid.reason == SyncReason::EniLookupFailed) out.retry = true;
        out.verdicts[job.key] = std::move(valid);
      }
      continue;
    }
    if (stage == PlanStage::Final) {
      auto& record = out.state.enis[r.eniId];
      if (!r.mac.empty()) record.mac = r.mac;
      if (r.deviceIndex >= 0) record.deviceIndex = r.deviceIndex;
      if (!r.subnet.empty()) record.subnet = r.subnet;
    }
    wanted[r.eniId].push_back(
        {job.key, job.uid, job.ip, *job.desired, job.lastApplied, job.lastAppliedHash});
  }
  return wanted;
}

std::vector<EniPlan> planAll(const TagPassOutput& out, const TagObservation& obs,
                             const Desires& wanted, const TagPlanOptions& options,
                             const std::set<std::string>* scope) {
  std::set<std::string> ids;
  if (scope == nullptr) {
    for (const auto& [id, record] : out.state.enis) ids.insert(id);
  } else {
    for (const auto& id : *scope) {
      if (out.state.enis.count(id) != 0) ids.insert(id);
    }
  }
  for (const auto& [id, pods] : wanted) ids.insert(id);
  std::vector<EniPlan> plans;
  for (const auto& id : ids) {
    auto record = out.state.enis.find(id);
    const bool recorded = record != out.state.enis.end();
    if (recorded && record->second.hasPending()) continue;  // its tags are unknown until read
    if (auto seen = obs.fresh.find(id); seen != obs.fresh.end() && !seen->second.notOurs.empty())
      continue;  // not this node's: dropped by the final plan
    EniInput input;
    input.eniId = id;
    const bool known = recorded && (!record->second.tags.empty() || !record->second.hash.empty() ||
                                    !record->second.pods.empty());
    input.record = known ? &record->second : nullptr;
    auto seen = obs.observed.find(id);
    input.observed = seen == obs.observed.end() ? nullptr : &seen->second;
    if (auto d = wanted.find(id); d != wanted.end()) input.pods = d->second;
    plans.push_back(planEni(input, PlanOptions{options.sharedEnis == SharedEniPolicy::Any}));
  }
  return plans;
}

void noteDropped(const Desires& wanted, const std::set<std::string>* scope, TagPassOutput& out) {
  auto note = [&](const std::string& id, const EniRecord& record) {
    auto d = wanted.find(id);
    for (const auto& [key, member] : record.pods) {
      const bool stays = d != wanted.end() && std::any_of(d->second.begin(), d->second.end(),
                                                          [&](auto& p) { return p.key == key; });
      if (!stays) out.droppedPods.insert(key);
    }
  };
  if (scope == nullptr) {
    for (const auto& [id, record] : out.state.enis) note(id, record);
    return;
  }
  for (const auto& id : *scope) {
    if (auto record = out.state.enis.find(id); record != out.state.enis.end())
      note(id, record->second);
  }
}

/// Nothing is written to an ENI this pass has not read (or found not to be this node's). The
/// plan before the read covers every writer; this only guards that promise.
void keepToWhatWasRead(const TagObservation& obs, TagPassOutput& out) {
  for (auto& plan : out.plans) {
    auto seen = obs.fresh.find(plan.eniId);
    if (!plan.writes() || (seen != obs.fresh.end() && seen->second.notOurs.empty())) continue;
    out.notes.push_back(
        {"not writing to an ENI this pass did not read, will retry", plan.eniId, ""});
    withholdWrites(plan, out.state, "");
    out.retry = true;
  }
}

/// `state` as it may be while `plan` is written: its tags before and after, the write-ahead's
/// keys, and its pods as members.
void recordAhead(const EniPlan& plan, const std::map<std::string, const PodJob*>& jobs,
                 NodeState& state) {
  EniRecord& r = state.enis[plan.eniId];
  for (const auto& [k, v] : plan.owned) r.tags[k] = v;
  if (!plan.toSet.empty()) {
    r.pendingHash = plan.hash;
    for (const auto& [k, v] : plan.toSet) {
      if (k != kHashTagKey) r.pendingKeys.push_back(k);
    }
  }
  for (const auto& v : plan.verdicts) {
    if (auto job = jobs.find(v.podKey); job != jobs.end())
      r.pods[v.podKey] = PodRecord{job->second->uid, job->second->ip};
  }
}

/// The node state the budget is kept for: `out.state`, or for a scoped pass that holds only its
/// scope's records (`whole` given), the whole state with the scope's records replaced by its own.
NodeState budgeted(const TagPassOutput& out, const RecordView* whole,
                   const std::set<std::string>* scope) {
  if (whole == nullptr || scope == nullptr) return out.state;
  NodeState s = whole->state();
  for (const auto& id : *scope) {
    if (auto it = out.state.enis.find(id); it != out.state.enis.end())
      s.enis.insert_or_assign(id, it->second);
    else
      s.enis.erase(id);
  }
  return s;
}

/// The encoded size of budgeted() with every plan recorded ahead, from the state's own size and
/// the changed records' sizes before and after (no copy of the whole state); at most a few bytes
/// over the exact size (a removed record's comma). None when the state alone is over the budget.
std::optional<std::size_t> sizeAhead(const std::map<std::string, const PodJob*>& jobs,
                                     const TagPassOutput& out, const TagPlanOptions& options,
                                     const std::set<std::string>* scope) {
  const bool part = options.whole != nullptr && scope != nullptr;
  const NodeState& basis = part ? options.whole->state() : out.state;
  std::size_t size = 0;
  if (part) {
    size = options.whole->encodedSize();
    if (size > NodeState::kMaxBytes) return std::nullopt;
  } else {
    auto encoded = encodeNodeState(basis, options.sized);
    if (!encoded) return std::nullopt;
    size = encoded->size();
  }
  // Each record that may differ from `basis`: the pass's version of it, with its plan ahead.
  std::map<std::string, std::optional<EniRecord>> ahead;
  if (part) {
    for (const auto& id : *scope) {
      auto it = out.state.enis.find(id);
      ahead[id] = it == out.state.enis.end() ? std::nullopt : std::optional(it->second);
    }
  }
  for (const auto& plan : out.plans) {
    auto& record = ahead[plan.eniId];
    if (!record) {
      auto it = out.state.enis.find(plan.eniId);
      record = it == out.state.enis.end() ? EniRecord{} : it->second;
    }
    NodeState one;
    one.enis.emplace(plan.eniId, std::move(*record));
    recordAhead(plan, jobs, one);
    record = std::move(one.enis.at(plan.eniId));
  }
  for (const auto& [id, record] : ahead) {
    auto was = basis.enis.find(id);
    if (was != basis.enis.end()) size -= encodedEniRecordSize(id, was->second);
    if (record) size += encodedEniRecordSize(id, *record) + (was == basis.enis.end() ? 1 : 0);
  }
  return size;
}

/// A tag is never written that the node state could not record: plans that would take it past
/// its budget are withheld, their pods told why.
void fitBudget(const std::vector<PodJob>& pods, const TagPlanOptions& options,
               const std::set<std::string>* scope, TagPassOutput& out) {
  std::map<std::string, const PodJob*> jobs;
  for (const auto& job : pods) jobs[job.key] = &job;
  if (auto size = sizeAhead(jobs, out, options, scope); size && *size <= NodeState::kMaxBytes)
    return;
  // Near or over the budget: the exact check, on a copy.
  const NodeState base = budgeted(out, options.whole, scope);
  NodeState trial = base;
  for (const auto& plan : out.plans) recordAhead(plan, jobs, trial);
  if (encodeNodeState(trial)) return;
  // Over the budget: what creates nothing goes in first (it only shrinks the record), then each
  // plan that creates tags while it still fits.
  trial = base;
  for (const auto& plan : out.plans) {
    if (plan.toSet.empty()) recordAhead(plan, jobs, trial);
  }
  for (auto& plan : out.plans) {
    if (plan.toSet.empty()) continue;
    NodeState next = trial;
    recordAhead(plan, jobs, next);
    auto encoded = encodeNodeState(next);
    if (encoded) {
      trial = std::move(next);
      continue;
    }
    out.notes.push_back({"not tagging an ENI: the node state could not record it", plan.eniId,
                         encoded.error().message});
    withholdWrites(plan, out.state,
                   "not written: with these tags the node's " + std::string(kNodeStateAnnotation) +
                       " annotation, eni-agent's record of what it owns, would exceed its 64 KiB "
                       "budget (" +
                       encoded.error().message +
                       "), and eni-agent never writes a tag it cannot record. Fewer or shorter "
                       "tags on this node's pods fit; it is tried again when a pod changes");
  }
}

}  // namespace

void planTags(const std::vector<PodJob>& pods, NodeState base, const TagObservation& obs,
              const TagPlanOptions& options, PlanStage stage, TagPassOutput& out,
              const std::set<std::string>* scope) {
  out.state = std::move(base);
  out.verdicts.clear();
  out.droppedPods.clear();
  out.notes.clear();
  out.retry = obs.retry;
  // The first plan leaves the records as they are (the final one starts from them again, no copy
  // between): it only plans nothing for an ENI seen not to be this node's.
  if (stage == PlanStage::Final) dropForeignRecords(obs, out);
  verify(pods, obs, options, out);
  const Desires wanted = gatherDesires(pods, obs, options, stage, scope, out);
  out.plans = planAll(out, obs, wanted, options, scope);
  noteDropped(wanted, scope, out);
  if (stage == PlanStage::BeforeRead) return;
  keepToWhatWasRead(obs, out);
  fitBudget(pods, options, scope, out);
}

std::set<std::string> enisToRead(const std::vector<PodJob>& pods, const TagPassOutput& planned,
                                 const TagObservation& obs, const TagPlanOptions& options,
                                 const std::set<std::string>* scope) {
  std::set<std::string> ids;
  for (const auto& [key, r] : obs.eniOf) {
    if (obs.fresh.count(r.eniId) != 0) continue;
    // An ENI named by the pod's annotation is checked before anything else: anyone who may edit
    // the pod may write it. --subnet-ids needs the subnet, which that annotation does not give.
    if (isHint(r.source)) ids.insert(r.eniId);
    if (!options.subnetIds.empty() && subnetOf(planned.state, r).empty()) ids.insert(r.eniId);
  }
  // Refuse judges an ENI a pod joins by its addresses and type, which only EC2 tells.
  const MemberIndex members(planned.state, scope);
  for (const auto& job : pods) {
    auto it = obs.eniOf.find(job.key);
    if (it == obs.eniOf.end() || obs.fresh.count(it->second.eniId) != 0 || !job.desired) continue;
    const ResolvedEni& r = it->second;
    if (!sharedEniRefusal(r, nullptr, recordOf(planned.state, r.eniId), options.sharedEnis) &&
        members.eniOf(job.key, job.uid, job.ip) != r.eniId) {
      ids.insert(r.eniId);
    }
  }
  for (const auto& plan : planned.plans) {
    if (plan.writes() && obs.fresh.count(plan.eniId) == 0) ids.insert(plan.eniId);
  }
  return ids;
}

// ---------------------------------------------------------------- record

namespace {

PodVerdict dryRunVerdict(const EniPlan& plan, const std::string& podKey) {
  std::string would;
  if (!plan.toSet.empty()) would += "CreateTags " + tagsToJson(plan.toSet) + " ";
  if (!plan.toDelete.empty()) {
    would += "DeleteTags [";
    bool first = true;
    for (const auto& [k, v] : plan.toDelete) {
      would += (first ? "" : ",") + k;
      first = false;
    }
    would += "] ";
  }
  return {podKey, SyncReason::DryRun,
          "dry run: would send " + (would.empty() ? std::string("nothing ") : would) + "on " +
              plan.eniId};
}

/// What EC2 now holds, so that later passes still know whose tags are on each ENI.
void noteWritten(const std::map<std::string, WriteFailure>& failed, TagPassOutput& out) {
  for (const auto& plan : out.plans) {
    auto seen = out.observed.find(plan.eniId);
    auto f = failed.find(plan.eniId);
    if (seen == out.observed.end() || (f != failed.end() && f->second.create)) continue;
    for (const auto& [k, v] : plan.toSet) seen->second[k] = v;
    if (f != failed.end()) continue;
    for (const auto& [k, v] : plan.toDelete) seen->second.erase(k);
  }
}

void recordVerdicts(const EniPlan& plan, const WriteFailure* failure, const TagPlanOptions& options,
                    TagPassOutput& out) {
  for (const auto& v : plan.verdicts) {
    auto existing = out.verdicts.find(v.podKey);
    if (existing != out.verdicts.end() && existing->second.reason == SyncReason::InvalidTags)
      continue;
    PodVerdict verdict = v;
    if (failure != nullptr && v.reason == SyncReason::Synced) {
      verdict = {v.podKey, SyncReason::TaggingFailed, failure->message};
    } else if (options.dryRun && v.reason == SyncReason::Synced) {
      verdict = dryRunVerdict(plan, v.podKey);
    }
    out.verdicts[v.podKey] = verdict;
    if (verdict.reason == SyncReason::Synced && plan.writes()) out.wrotePods.insert(v.podKey);
  }
}

void recordEni(const EniPlan& plan, const WriteFailure* failure, TagPassOutput& out) {
  EniRecord& record = out.state.enis[plan.eniId];
  if (failure == nullptr) {
    record.tags = plan.owned;
    record.hash = plan.hash;
    record.pods.clear();
    record.clearPending();
    return;
  }
  if (failure->retryable) out.retry = true;
  if (!failure->create) {
    // CreateTags landed, DeleteTags did not: the ENI has the new hash and still the old keys,
    // which stay owned so that a later pass removes them.
    for (const auto& [k, v] : plan.owned) record.tags[k] = v;
    if (plan.toSet.count(kHashTagKey) != 0) record.hash = plan.hash;
    record.clearPending();
  } else if (!failure->retryable) {
    record.clearPending();  // EC2 refused the CreateTags: it did not land
  }
  // A CreateTags that failed on the way may have landed: its write-ahead stays for the next
  // pass to read.
}

/// Membership: pods whose ENI plan succeeded (Synced, Conflict, InvalidTags) are the cache of
/// next time.
void recordMembers(const std::vector<PodJob>& pods, const std::map<std::string, std::string>& was,
                   const std::map<std::string, WriteFailure>& failed, const TagPlanOptions& options,
                   TagPassOutput& out) {
  for (const auto& job : pods) {
    auto v = out.verdicts.find(job.key);
    if (v == out.verdicts.end()) continue;
    const bool member = v->second.reason == SyncReason::Synced ||
                        v->second.reason == SyncReason::Conflict ||
                        v->second.reason == SyncReason::InvalidTags;
    if (!member) continue;
    std::string eni;
    if (auto r = out.eniOf.find(job.key); r != out.eniOf.end()) eni = r->second.eniId;
    if (eni.empty()) {
      if (auto it = was.find(job.key); it != was.end()) eni = it->second;
    }
    if (eni.empty() || failed.count(eni) != 0 || options.dryRun) continue;
    if (out.state.enis.count(eni) == 0) continue;  // dropped: not this node's
    out.state.enis[eni].pods[job.key] = PodRecord{job.uid, job.ip};
    out.droppedPods.erase(job.key);
    if (v->second.reason == SyncReason::Synced) out.appliedByPod[job.key] = *job.desired;
  }
}

}  // namespace

void recordWrites(const std::vector<PodJob>& pods,
                  const std::map<std::string, WriteFailure>& failed, const TagPlanOptions& options,
                  TagPassOutput& out) {
  // The member pods no verified ENI places (an invalid annotation keeps theirs): where the
  // records placed them before this recording clears the written ENIs' members.
  std::map<std::string, std::string> was;
  std::optional<MemberIndex> members;
  for (const auto& job : pods) {
    if (out.eniOf.count(job.key) != 0 || out.verdicts.count(job.key) == 0) continue;
    if (!members) members.emplace(out.state);
    if (auto eni = members->eniOf(job.key, job.uid, job.ip); !eni.empty()) was[job.key] = eni;
  }
  if (!options.dryRun) noteWritten(failed, out);
  for (auto& plan : out.plans) {
    auto f = failed.find(plan.eniId);
    const WriteFailure* failure = f == failed.end() ? nullptr : &f->second;
    recordVerdicts(plan, failure, options, out);
    if (!options.dryRun) recordEni(plan, failure, out);
  }
  recordMembers(pods, was, failed, options, out);
  for (auto it = out.state.enis.begin(); it != out.state.enis.end();) {
    const EniRecord& r = it->second;
    const bool empty = r.pods.empty() && r.tags.empty() && !r.hasPending();
    it = empty && failed.count(it->first) == 0 ? out.state.enis.erase(it) : std::next(it);
  }
}

}  // namespace eni
