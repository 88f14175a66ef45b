#include "agent/tagger/tag_pass.h"

#include <algorithm>

#include "agent/base/log.h"

namespace eni {

std::string memberEni(const NodeState& state, const std::string& key, const std::string& uid,
                      const std::string& ip) {
  for (const auto& [id, record] : state.enis) {
    auto it = record.pods.find(key);
    if (it != record.pods.end() && it->second.uid == uid && it->second.ip == ip) return id;
  }
  return {};
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

namespace {

TagSet tagsOf(const NetworkInterface& eni) {
  TagSet tags;
  for (const auto& t : eni.tags) tags[t.key] = t.value;
  return tags;
}

std::string tagOf(const NetworkInterface& eni, const std::string& key) {
  for (const auto& t : eni.tags) {
    if (t.key == key) return t.value;
  }
  return {};
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
  }
  return "the node state";
}

}  // namespace

// ---------------------------------------------------------------- observe and plan

void TagPass::plan(const TagPassInput& in, TagPassOutput& out) {
  out.state = in.state;
  out.observed = in.observed;
  bool cold = false;
  if (!identify(out, cold)) return;
  // The interface map is read once, up front (a walk of a dozen IMDS paths per ENI), so the
  // first pods annotated after a start do not wait for it. Free: IMDS, not EC2.
  resolver_.prefetch();
  Fresh fresh;
  if (in.observeAll || cold) observeAll(out, fresh, cold);
  settlePending(out, fresh);
  resolve(in, out, fresh);
  // A first plan from what is known tells which ENIs would be written. One Describe then reads
  // all of them, with the ENIs still to be verified, and the final plan is made from what it shows.
  out.plans = planAll(out, desires(in, out, false));
  std::string readError;
  if (auto ids = toRead(out, fresh); !ids.empty()) readError = read(ids, out, fresh);
  verify(in, out, fresh, readError);
  const Desires wanted = desires(in, out, true);
  out.plans = planAll(out, wanted);
  for (const auto& [id, record] : out.state.enis) {
    auto d = wanted.find(id);
    for (const auto& [key, member] : record.pods) {
      const bool stays = d != wanted.end() && std::any_of(d->second.begin(), d->second.end(),
                                                          [&](auto& p) { return p.key == key; });
      if (!stays) out.droppedPods.insert(key);
    }
  }
  keepToWhatWasRead(out, fresh);
  fitBudget(in, out);
}

bool TagPass::identify(TagPassOutput& out, bool& cold) {
  if (instanceId_.empty()) {
    auto id = imds_.identity();
    if (!id || id->instanceId.empty()) {
      logWarn("cannot read this instance's identity from IMDS, will retry",
              {{"error", id ? std::string("empty instance ID") : id.error().describe()}});
      out.retry = true;
      return false;
    }
    instanceId_ = id->instanceId;
  }
  // The annotation is writable by more than this agent: records made for another instance (or
  // for none) prove nothing here.
  if (out.state.instanceId != instanceId_ &&
      (!out.state.instanceId.empty() || !out.state.enis.empty())) {
    logWarn("the node state's ENI records were not made on this instance, ignoring them",
            {{"recorded_instance", out.state.instanceId}, {"instance", instanceId_}});
    out.state.enis.clear();
    cold = true;
  }
  out.state.instanceId = instanceId_;
  return true;
}

void TagPass::observeAll(TagPassOutput& out, Fresh& fresh, bool cold) {
  // Drift check and cold start: one filtered Describe for every ENI the node state knows, or on
  // a cold start for every ENI attached to the instance.
  std::vector<Filter> filter;
  const bool byRecords = !cold && !out.state.enis.empty();
  if (byRecords) {
    std::vector<std::string> ids;
    for (const auto& [id, r] : out.state.enis) ids.push_back(id);
    filter.push_back({"network-interface-id", ids});
  } else {
    filter.push_back({"attachment.instance-id", {instanceId_}});
  }
  auto enis = ec2_.describeNetworkInterfaces({}, filter);
  if (!enis) {
    logWarn("cannot read this node's ENIs from EC2, will retry at the next resync",
            {{"error", enis.error().describe()}});
    counters_.reconcileError();
    return;
  }
  fresh.describedAll = true;
  for (const auto& eni : *enis) see(eni, out, fresh);
  if (!byRecords) return;
  // Records of ENIs that no longer exist own nothing; their pods are resolved again.
  for (auto it = out.state.enis.begin(); it != out.state.enis.end();) {
    if (fresh.enis.count(it->first) != 0 || it->second.hasPending()) {
      ++it;
      continue;
    }
    logInfo("forgetting an ENI that EC2 no longer has", {{"eni", it->first}});
    it = out.state.enis.erase(it);
  }
}

void TagPass::see(const NetworkInterface& eni, TagPassOutput& out, Fresh& fresh) {
  Seen seen;
  seen.tags = tagsOf(eni);
  seen.subnet = eni.subnetId;
  seen.addresses = eni.privateIpAddresses;
  seen.addresses.push_back(eni.privateIpAddress);
  seen.addresses.insert(seen.addresses.end(), eni.ipv6Addresses.begin(), eni.ipv6Addresses.end());
  seen.notOurs = whyNotOurs(eni);
  out.observed[eni.id] = seen.tags;
  fresh.enis[eni.id] = std::move(seen);
}

std::string TagPass::whyNotOurs(const NetworkInterface& eni) {
  if (eni.attachment && !eni.attachment->instanceId.empty()) {
    if (eni.attachment->instanceId == instanceId_) return "";
    return "it is attached to instance " + eni.attachment->instanceId + ", not to this node's " +
           instanceId_;
  }
  if (eni.interfaceType == "branch") {
    const std::string trunk = tagOf(eni, kTrunkEniTag);
    if (!trunk.empty() && resolver_.attachedHere(trunk)) return "";
    return "it is a branch ENI of trunk " + (trunk.empty() ? std::string("(none named)") : trunk) +
           ", which is not attached to this node's instance " + instanceId_;
  }
  return "it is not attached to this node's instance " + instanceId_ +
         " and is not a branch ENI of its trunk";
}

void TagPass::settlePending(TagPassOutput& out, const Fresh& fresh) {
  // Write-ahead records: the CreateTags landed if the ENI carries its hash; then the agent owns
  // the pending keys the ENI still carries. An ENI gone owns nothing.
  for (auto& [id, record] : out.state.enis) {
    if (!record.hasPending()) continue;
    auto seen = fresh.enis.find(id);
    if (seen == fresh.enis.end()) {
      if (!fresh.describedAll) {
        out.retry = true;  // unknown still: left alone until a Describe tells
        continue;
      }
      record.clearPending();
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

void TagPass::resolve(const TagPassInput& in, TagPassOutput& out, Fresh& fresh) {
  // The node state's cache first, then the resolver for the rest.
  std::vector<ResolveRequest> requests;
  for (const auto& job : in.pods) {
    if (!job.desired) continue;
    const std::string cached = memberEni(out.state, job.key, job.uid, job.ip);
    if (cached.empty()) {
      requests.push_back({job.key, job.ip, job.podEniAnnotation});
      continue;
    }
    ResolvedEni r;
    r.eniId = cached;
    r.subnet = out.state.enis.at(cached).subnet;
    r.source = ResolveSource::Cache;
    out.eniOf[job.key] = r;
    counters_.resolved(ResolveSource::Cache);
  }
  if (requests.empty()) return;
  std::vector<NetworkInterface> described;
  for (auto& [key, result] : resolver_.resolve(requests, described)) {
    if (result) {
      counters_.resolved(result->source);
      out.eniOf[key] = *result;
    } else {
      out.verdicts[key] = {key, SyncReason::EniLookupFailed, result.error().message};
      out.retry = true;
    }
  }
  for (const auto& eni : described) see(eni, out, fresh);
}

std::string TagPass::recordedSubnet(const TagPassOutput& out, const ResolvedEni& r) const {
  if (!r.subnet.empty()) return r.subnet;
  auto record = out.state.enis.find(r.eniId);
  return record == out.state.enis.end() ? "" : record->second.subnet;
}

std::set<std::string> TagPass::toRead(const TagPassOutput& out, const Fresh& fresh) const {
  std::set<std::string> ids;
  for (const auto& [key, r] : out.eniOf) {
    if (fresh.enis.count(r.eniId) != 0) continue;
    // An ENI named by the pod's annotation is checked before anything else: anyone who may edit
    // the pod may write it. --subnet-ids needs the subnet, which that annotation does not give.
    if (r.source == ResolveSource::PodAnnotation) ids.insert(r.eniId);
    if (!options_.subnetIds.empty() && recordedSubnet(out, r).empty()) ids.insert(r.eniId);
  }
  for (const auto& plan : out.plans) {
    if (plan.writes() && fresh.enis.count(plan.eniId) == 0) ids.insert(plan.eniId);
  }
  return ids;
}

std::string TagPass::read(const std::set<std::string>& ids, TagPassOutput& out, Fresh& fresh) {
  auto enis = ec2_.describeNetworkInterfaces(
      {}, {{"network-interface-id", std::vector<std::string>(ids.begin(), ids.end())}});
  if (!enis) {
    logWarn("cannot read ENIs from EC2 before writing to them, will retry",
            {{"enis", ids.size()}, {"error", enis.error().describe()}});
    counters_.reconcileError();
    out.retry = true;
    return enis.error().describe();
  }
  for (const auto& eni : *enis) see(eni, out, fresh);
  for (const auto& id : ids) {
    if (fresh.enis.count(id) == 0) fresh.gone.insert(id);
  }
  return "";
}

void TagPass::verify(const TagPassInput& in, TagPassOutput& out, const Fresh& fresh,
                     const std::string& readError) {
  // Records of ENIs that are not this node's: nothing may be done on their account.
  for (auto it = out.state.enis.begin(); it != out.state.enis.end();) {
    auto seen = fresh.enis.find(it->first);
    if (seen == fresh.enis.end() || seen->second.notOurs.empty()) {
      ++it;
      continue;
    }
    logWarn("ignoring the record of an ENI that is not this node's",
            {{"eni", it->first}, {"reason", seen->second.notOurs}});
    it = out.state.enis.erase(it);
  }
  for (const auto& job : in.pods) {
    auto it = out.eniOf.find(job.key);
    if (it == out.eniOf.end()) continue;
    ResolvedEni& r = it->second;
    const std::string problem = eniProblem(job, r, fresh, readError);
    if (problem.empty()) {
      if (auto seen = fresh.enis.find(r.eniId); seen != fresh.enis.end() && r.subnet.empty())
        r.subnet = seen->second.subnet;
      continue;
    }
    out.verdicts[job.key] = {job.key, SyncReason::EniLookupFailed, problem};
    // A missing or unreadable ENI may come right (IMDS refreshes, EC2 answers); a foreign one
    // does not until the pod changes.
    if (!fresh.enis.count(r.eniId)) out.retry = true;
    out.eniOf.erase(it);
  }
}

std::string TagPass::eniProblem(const PodJob& job, const ResolvedEni& r, const Fresh& fresh,
                                const std::string& readError) const {
  const std::string from = sourceName(r.source);
  auto seen = fresh.enis.find(r.eniId);
  if (seen == fresh.enis.end()) {
    if (fresh.gone.count(r.eniId) != 0)
      return from + " names " + r.eniId + " for " + job.ip +
             ", but EC2 has no such ENI; will retry";
    if (!readError.empty())
      return "cannot read " + r.eniId + " from EC2 before tagging it: " + readError +
             "; will retry";
    return "";  // not read this pass, and not written either
  }
  if (!seen->second.notOurs.empty()) {
    return from + " names " + r.eniId + " for " + job.ip + ", but " + seen->second.notOurs +
           "; eni-agent tags only the ENIs of its own node";
  }
  const auto& addresses = seen->second.addresses;
  if (r.source == ResolveSource::PodAnnotation &&
      std::find(addresses.begin(), addresses.end(), job.ip) == addresses.end()) {
    return from + " names " + r.eniId + " for " + job.ip + ", but that ENI does not hold " +
           job.ip + "; eni-agent tags only the ENI that holds the pod's IP";
  }
  if (!options_.subnetIds.empty() && r.subnet.empty() && seen->second.subnet.empty()) {
    return "cannot tell the subnet of " + r.eniId + " to apply --subnet-ids; will retry";
  }
  return "";
}

TagPass::Desires TagPass::desires(const TagPassInput& in, TagPassOutput& out, bool final) {
  Desires wanted;
  for (const auto& job : in.pods) {
    if (!job.desired) {
      // Invalid now: keep what was applied for it, if it is a member.
      out.verdicts[job.key] = {job.key, SyncReason::InvalidTags, job.desired.error().message};
      const std::string eni = memberEni(out.state, job.key, job.uid, job.ip);
      if (!eni.empty() && !job.lastAppliedHash.empty()) {
        wanted[eni].push_back(
            {job.key, job.uid, job.ip, job.lastApplied, job.lastApplied, job.lastAppliedHash});
      }
      continue;
    }
    auto it = out.eniOf.find(job.key);
    if (it == out.eniOf.end()) continue;
    const ResolvedEni& r = it->second;
    const std::string subnet = recordedSubnet(out, r);
    if (!options_.subnetIds.empty() &&
        std::find(options_.subnetIds.begin(), options_.subnetIds.end(), subnet) ==
            options_.subnetIds.end()) {
      continue;  // outside --subnet-ids (or its subnet unknown): not ours to tag
    }
    if (final) {
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

std::vector<EniPlan> TagPass::planAll(const TagPassOutput& out, const Desires& wanted) const {
  std::set<std::string> ids;
  for (const auto& [id, record] : out.state.enis) ids.insert(id);
  for (const auto& [id, pods] : wanted) ids.insert(id);
  std::vector<EniPlan> plans;
  for (const auto& id : ids) {
    auto record = out.state.enis.find(id);
    const bool recorded = record != out.state.enis.end();
    if (recorded && record->second.hasPending()) continue;  // its tags are unknown until read
    EniInput input;
    input.eniId = id;
    const bool known = recorded && (!record->second.tags.empty() || !record->second.hash.empty() ||
                                    !record->second.pods.empty());
    input.record = known ? &record->second : nullptr;
    auto seen = out.observed.find(id);
    input.observed = seen == out.observed.end() ? nullptr : &seen->second;
    if (auto d = wanted.find(id); d != wanted.end()) input.pods = d->second;
    plans.push_back(planEni(input, PlanOptions{options_.allowSharedEniTagging}));
  }
  return plans;
}

void TagPass::keepToWhatWasRead(TagPassOutput& out, const Fresh& fresh) {
  // Nothing is written to an ENI this pass has not read (or found not to be this node's). The
  // first plan covers every writer; this only guards that promise.
  for (auto& plan : out.plans) {
    auto seen = fresh.enis.find(plan.eniId);
    if (!plan.writes() || (seen != fresh.enis.end() && seen->second.notOurs.empty())) continue;
    logWarn("not writing to an ENI this pass did not read, will retry", {{"eni", plan.eniId}});
    withholdWrites(plan, out.state, "");
    out.retry = true;
  }
}

// ---------------------------------------------------------------- the node-state budget

namespace {

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

}  // namespace

void TagPass::fitBudget(const TagPassInput& in, TagPassOutput& out) {
  std::map<std::string, const PodJob*> jobs;
  for (const auto& job : in.pods) jobs[job.key] = &job;
  NodeState trial = out.state;
  for (const auto& plan : out.plans) recordAhead(plan, jobs, trial);
  if (encodeNodeState(trial)) return;
  // Over the budget: what creates nothing goes in first (it only shrinks the record), then each
  // plan that creates tags while it still fits. A tag is never written that could not be recorded.
  trial = out.state;
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
    logWarn("not tagging an ENI: the node state could not record it",
            {{"eni", plan.eniId}, {"error", encoded.error().message}});
    withholdWrites(plan, out.state,
                   "not written: with these tags the node's " + std::string(kNodeStateAnnotation) +
                       " annotation, eni-agent's record of what it owns, would exceed its 64 KiB "
                       "budget (" +
                       encoded.error().message +
                       "), and eni-agent never writes a tag it cannot record. Fewer or shorter "
                       "tags on this node's pods fit; it is tried again when a pod changes");
  }
}

// ---------------------------------------------------------------- apply and record

std::map<std::string, TagPass::WriteFailure> TagPass::send(const std::vector<EniPlan>& plans) {
  std::map<std::string, WriteFailure> failed;
  // Identical changes share a call; DeleteTags after CreateTags, and none on an ENI whose
  // CreateTags failed (its record stays as it was).
  for (const auto& write : coalesceWrites(plans)) {
    std::vector<std::string> resources;
    for (const auto& id : write.resources) {
      if (write.create || failed.count(id) == 0) resources.push_back(id);
    }
    if (resources.empty()) continue;
    std::vector<Tag> tags;
    for (const auto& [k, v] : write.tags) tags.push_back({k, v});
    auto done = write.create ? ec2_.createTags(resources, tags) : ec2_.deleteTags(resources, tags);
    if (done) continue;
    counters_.reconcileError();
    const bool retryable = done.error().retryable();
    for (const auto& id : resources) {
      failed[id] = {std::string(write.create ? "CreateTags" : "DeleteTags") + " on " + id +
                        " failed: " + done.error().describe() +
                        (retryable ? "; will retry"
                                   : "; not retried until the pod changes or the next resync, "
                                     "since EC2 refused it"),
                    retryable, write.create};
    }
  }
  return failed;
}

void TagPass::write(const TagPassInput& in, TagPassOutput& out) {
  const auto failed = options_.dryRun ? std::map<std::string, WriteFailure>{} : send(out.plans);
  if (!options_.dryRun) {
    // What EC2 now holds, so that later passes still know whose tags are on each ENI.
    for (const auto& plan : out.plans) {
      auto seen = out.observed.find(plan.eniId);
      auto f = failed.find(plan.eniId);
      if (seen == out.observed.end() || (f != failed.end() && f->second.create)) continue;
      for (const auto& [k, v] : plan.toSet) seen->second[k] = v;
      if (f != failed.end()) continue;
      for (const auto& [k, v] : plan.toDelete) seen->second.erase(k);
    }
  }
  for (auto& plan : out.plans) recordPlan(plan, failed, out);
  recordMembers(in, failed, out);
  for (auto it = out.state.enis.begin(); it != out.state.enis.end();) {
    const EniRecord& r = it->second;
    const bool empty = r.pods.empty() && r.tags.empty() && !r.hasPending();
    it = empty && failed.count(it->first) == 0 ? out.state.enis.erase(it) : std::next(it);
  }
}

void TagPass::recordPlan(const EniPlan& plan, const std::map<std::string, WriteFailure>& failed,
                         TagPassOutput& out) {
  auto f = failed.find(plan.eniId);
  for (const auto& v : plan.verdicts) {
    auto existing = out.verdicts.find(v.podKey);
    if (existing != out.verdicts.end() && existing->second.reason == SyncReason::InvalidTags)
      continue;
    PodVerdict verdict = v;
    if (f != failed.end() && v.reason == SyncReason::Synced) {
      verdict = {v.podKey, SyncReason::TaggingFailed, f->second.message};
    } else if (options_.dryRun && v.reason == SyncReason::Synced) {
      verdict = dryRunVerdict(plan, v.podKey);
    }
    out.verdicts[v.podKey] = verdict;
    if (verdict.reason == SyncReason::Synced && plan.writes()) out.wrotePods.insert(v.podKey);
  }
  if (options_.dryRun) return;
  EniRecord& record = out.state.enis[plan.eniId];
  if (f == failed.end()) {
    record.tags = plan.owned;
    record.hash = plan.hash;
    record.pods.clear();
    record.clearPending();
    return;
  }
  if (f->second.retryable) out.retry = true;
  if (!f->second.create) {
    // CreateTags landed, DeleteTags did not: the ENI has the new hash and still the old keys,
    // which stay owned so that a later pass removes them.
    for (const auto& [k, v] : plan.owned) record.tags[k] = v;
    if (plan.toSet.count(kHashTagKey) != 0) record.hash = plan.hash;
    record.clearPending();
  } else if (!f->second.retryable) {
    record.clearPending();  // EC2 refused the CreateTags: it did not land
  }
  // A CreateTags that failed on the way may have landed: its write-ahead stays for the next
  // pass to read.
}

PodVerdict TagPass::dryRunVerdict(const EniPlan& plan, const std::string& podKey) const {
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
  logInfo("dry run: would write tags", {{"eni", plan.eniId}, {"pod", podKey}, {"calls", would}});
  return {podKey, SyncReason::DryRun,
          "dry run: would send " + (would.empty() ? std::string("nothing ") : would) + "on " +
              plan.eniId};
}

void TagPass::recordMembers(const TagPassInput& in,
                            const std::map<std::string, WriteFailure>& failed, TagPassOutput& out) {
  // Membership: pods whose ENI plan succeeded (Synced or Conflict) are the cache of next time.
  for (const auto& job : in.pods) {
    auto v = out.verdicts.find(job.key);
    if (v == out.verdicts.end()) continue;
    const bool member = v->second.reason == SyncReason::Synced ||
                        v->second.reason == SyncReason::Conflict ||
                        v->second.reason == SyncReason::InvalidTags;
    if (!member) continue;
    std::string eni;
    if (auto r = out.eniOf.find(job.key); r != out.eniOf.end()) eni = r->second.eniId;
    if (eni.empty()) eni = memberEni(in.state, job.key, job.uid, job.ip);
    if (eni.empty() || failed.count(eni) != 0 || options_.dryRun) continue;
    if (out.state.enis.count(eni) == 0) continue;  // ignored above: not this node's
    out.state.enis[eni].pods[job.key] = PodRecord{job.uid, job.ip};
    out.droppedPods.erase(job.key);
    if (v->second.reason == SyncReason::Synced) out.appliedByPod[job.key] = *job.desired;
  }
}

}  // namespace eni
