#include "agent/tagger/tag_pass.h"

#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include "agent/base/log.h"

namespace eni {
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

void logNotes(const TagPassOutput& out) {
  for (const auto& [message, eni, detail] : out.notes) {
    if (detail.empty())
      logWarn(message, {{"eni", eni}});
    else
      logWarn(message, {{"eni", eni}, {"reason", detail}});
  }
}

}  // namespace

TagPlanOptions TagPass::planOptions() {
  return {options_.subnetIds, options_.sharedEnis, options_.dryRun, &sized_};
}

// ---------------------------------------------------------------- observe, then plan

void TagPass::plan(TagPassInput& in, TagPassOutput& out,
                   const std::function<void(const TagPassOutput&)>& beforeRead) {
  // Held for this plan only: the loop thread brings it up to date for the next pass once this
  // one has let go of it.
  const std::shared_ptr<const RecordView> records = std::move(in.records);
  const NodeState& whole = records->state();
  // A scoped pass plans its scope's records alone: it copies those (scope()), not every record.
  bool part = in.marked && !in.observeAll;
  out.state = part ? stateWithoutEnis(whole) : whole;
  out.deferred.clear();
  // Beside passes in flight, a pass claims nothing until its scope says what (scope()): one that
  // cannot tell its instance then changes no record.
  out.claimed.reset();
  if (!in.busy.empty()) out.claimed.emplace();
  bool cold = false;
  if (!identify(whole, out, cold)) {
    if (part) out.state = whole;  // no record changes
    return;
  }
  part = part && !cold;  // a cold pass plans every pod, with no record
  // The interface map is read once, up front (a walk of a dozen IMDS paths per ENI), so the
  // first pods annotated after a start do not wait for it. Free: IMDS, not EC2.
  resolver_.prefetch();
  TagObservation obs;
  obs.observed = std::move(observed_);  // back, with this pass's reads, below
  if (in.observeAll || cold)
    observeAll(out.state, obs, cold);
  else
    recall(obs);
  NodeState base = std::move(out.state);  // planTags sets out.state again
  settleWriteAheads(base, obs, obs.retry, in.busy.enis);
  scope(in, base, part ? records.get() : nullptr, obs, out);
  const std::vector<PodJob>& pods = out.pods;
  const std::set<std::string>* only = out.claimed ? &out.claimed->enis : nullptr;
  // A first plan from what is known tells which ENIs would be written. One Describe then reads
  // all of them, with the ENIs still to be verified, and the final plan is made from what it shows.
  TagPlanOptions options = planOptions();
  if (part) options.whole = records.get();
  // The first plan leaves the records as `base` has them (out.state): the final one takes them
  // back.
  planTags(pods, std::move(base), obs, options, PlanStage::BeforeRead, out, only);
  if (auto ids = enisToRead(pods, out, obs, options, only); !ids.empty()) {
    if (beforeRead) beforeRead(out);
    read(ids, obs);
  }
  planTags(pods, std::move(out.state), obs, options, PlanStage::Final, out, only);
  observed_ = std::move(obs.observed);
  logNotes(out);
}

void TagPass::scope(const TagPassInput& in, NodeState& state, const RecordView* view,
                    TagObservation& obs, TagPassOutput& out) {
  out.pods.clear();
  // A pass that reads every ENI plans every pod: what it reads may concern any of them.
  if (!in.marked || in.observeAll || obs.describedAll) {
    if (!in.busy.empty()) {
      // Only a scoped pass runs beside others; this one (a cold start found midway) waits.
      for (const auto& job : in.pods) out.deferred.insert(job->key);
      return;
    }
    const MemberIndex members(state);
    out.pods.reserve(in.pods.size());
    for (const auto& job : in.pods) out.pods.push_back(*job);
    std::vector<const PodJob*> all;
    all.reserve(out.pods.size());
    for (const auto& job : out.pods) all.push_back(&job);
    resolve(all, members, state, obs);
    return;
  }
  // The scope is found in the view's records when the pass holds none of its own yet.
  const MemberIndex own = view == nullptr ? MemberIndex(state) : MemberIndex();
  const MemberIndex& members = view != nullptr ? view->members() : own;
  const NodeState& records = view != nullptr ? view->state() : state;
  // in.pods is in key order (the tagger's pods map): found by bisection, no map of every pod.
  auto jobOf = [&](const std::string& key) -> const PodJob* {
    auto it = std::lower_bound(in.pods.begin(), in.pods.end(), key,
                               [](const auto& job, const std::string& k) { return job->key < k; });
    return it != in.pods.end() && (*it)->key == key ? it->get() : nullptr;
  };
  PassScope reach = reachOf(*in.marked, records, members, [&](const std::set<std::string>& keys) {
    std::vector<const PodJob*> jobs;
    for (const auto& key : keys) {
      if (const PodJob* job = jobOf(key)) jobs.push_back(job);
    }
    resolve(jobs, members, records, obs);
    std::map<std::string, std::string> eniOf;
    for (const auto& key : keys) {
      if (auto it = obs.eniOf.find(key); it != obs.eniOf.end()) eniOf[key] = it->second.eniId;
    }
    return eniOf;
  });
  out.deferred = deferBusy(reach, in.busy, members, obs.eniOf);
  for (const auto& key : out.deferred) {
    obs.eniOf.erase(key);
    obs.lookups.erase(key);
  }
  for (const auto& key : reach.pods) {
    if (const PodJob* job = jobOf(key)) out.pods.push_back(*job);
  }
  if (view != nullptr) {
    for (const auto& id : reach.enis) {
      if (auto it = records.enis.find(id); it != records.enis.end()) state.enis.insert(*it);
    }
  }
  out.claimed = std::move(reach);
}

bool TagPass::identify(const NodeState& whole, TagPassOutput& out, bool& cold) {
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
  if (whole.instanceId != instanceId_ && (!whole.instanceId.empty() || !whole.enis.empty())) {
    logWarn("the node state's ENI records were not made on this instance, ignoring them",
            {{"recorded_instance", whole.instanceId}, {"instance", instanceId_}});
    out.state.enis.clear();
    cold = true;
  }
  out.state.instanceId = instanceId_;
  return true;
}

void TagPass::observeAll(NodeState& state, TagObservation& obs, bool cold) {
  // Drift check and cold start: one filtered Describe for every ENI the node state knows, or on
  // a cold start for every ENI attached to the instance.
  std::vector<Filter> filter;
  const bool byRecords = !cold && !state.enis.empty();
  if (byRecords) {
    std::vector<std::string> ids;
    ids.reserve(state.enis.size());
    for (const auto& [id, r] : state.enis) ids.push_back(id);
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
  obs.describedAll = true;
  for (const auto& eni : *enis) see(eni, obs);
  if (!byRecords) return;
  // Records of ENIs that no longer exist own nothing; their pods are resolved again.
  for (auto it = state.enis.begin(); it != state.enis.end();) {
    if (obs.fresh.count(it->first) != 0 || it->second.hasPending()) {
      ++it;
      continue;
    }
    logInfo("forgetting an ENI that EC2 no longer has", {{"eni", it->first}});
    it = state.enis.erase(it);
  }
}

void TagPass::see(const NetworkInterface& eni, TagObservation& obs) {
  SeenEni seen;
  seen.tags = tagsOf(eni);
  seen.subnet = eni.subnetId;
  seen.addresses = eni.privateIpAddresses;
  seen.addresses.push_back(eni.privateIpAddress);
  seen.addresses.insert(seen.addresses.end(), eni.ipv6Addresses.begin(), eni.ipv6Addresses.end());
  seen.notOurs = whyNotOurs(eni);
  seen.interfaceType = eni.interfaceType;
  std::set<std::string> ipv4s(eni.privateIpAddresses.begin(), eni.privateIpAddresses.end());
  if (!eni.privateIpAddress.empty()) ipv4s.insert(eni.privateIpAddress);
  seen.ipv4Count = ipv4s.size();
  seen.ipv4Prefixes = eni.ipv4Prefixes.size();
  if (eni.attachment) seen.deviceIndex = eni.attachment->deviceIndex;
  obs.observed[eni.id] = seen.tags;
  recent_[eni.id] = {seen, clock_.now()};
  obs.fresh[eni.id] = std::move(seen);
}

void TagPass::recall(TagObservation& obs) {
  const TimePoint now = clock_.now();
  for (auto it = recent_.begin(); it != recent_.end();) {
    if (now - it->second.second > options_.readFreshFor) {
      it = recent_.erase(it);
      continue;
    }
    obs.observed[it->first] = it->second.first.tags;
    obs.fresh[it->first] = it->second.first;
    ++it;
  }
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

void TagPass::resolve(const std::vector<const PodJob*>& jobs, const MemberIndex& members,
                      const NodeState& state, TagObservation& obs) {
  // The node state's cache first, then the resolver for the rest.
  std::vector<ResolveRequest> requests;
  for (const PodJob* pod : jobs) {
    const PodJob& job = *pod;
    if (!job.desired) continue;
    const std::string cached = members.eniOf(job.key, job.uid, job.ip);
    if (cached.empty()) {
      requests.push_back({job.key, job.ip, job.podEniAnnotation, job.hintedEni});
      continue;
    }
    ResolvedEni r;
    r.eniId = cached;
    r.subnet = state.enis.at(cached).subnet;
    r.source = ResolveSource::Cache;
    obs.eniOf[job.key] = r;
    counters_.resolved(ResolveSource::Cache);
  }
  if (requests.empty()) return;
  std::vector<NetworkInterface> described;
  for (auto& [key, result] : resolver_.resolve(requests, described)) {
    if (result) {
      counters_.resolved(result->source);
      obs.eniOf[key] = *result;
    } else {
      obs.lookups[key] = {key, SyncReason::EniLookupFailed, result.error().message};
      obs.retry = true;
    }
  }
  for (const auto& eni : described) see(eni, obs);
}

void TagPass::read(const std::set<std::string>& ids, TagObservation& obs) {
  // The instance's own ENIs come along (IMDS lists them; a dozen at most on most types): the next
  // passes of a burst write to them without a read of their own while this one is fresh.
  std::set<std::string> asked = ids;
  for (const auto& id : resolver_.interfaceIds()) {
    if (obs.fresh.count(id) == 0) asked.insert(id);
  }
  auto enis = ec2_.describeNetworkInterfaces(
      {}, {{"network-interface-id", std::vector<std::string>(asked.begin(), asked.end())}});
  if (!enis) {
    logWarn("cannot read ENIs from EC2 before writing to them, will retry",
            {{"enis", ids.size()}, {"error", enis.error().describe()}});
    counters_.reconcileError();
    obs.retry = true;
    obs.readError = enis.error().describe();
    return;
  }
  for (const auto& eni : *enis) see(eni, obs);
  for (const auto& id : ids) {
    if (obs.fresh.count(id) == 0) obs.gone.insert(id);
  }
}

// ---------------------------------------------------------------- apply, then record

std::map<std::string, WriteFailure> TagPass::send(const std::vector<EniPlan>& plans) {
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

void TagPass::write(TagPassOutput& out) {
  const TagPlanOptions options = planOptions();
  const auto failed = options.dryRun ? std::map<std::string, WriteFailure>{} : send(out.plans);
  // What was read of an ENI written to (or maybe written to) is no longer what it holds.
  for (const auto& plan : out.plans) {
    if (plan.writes() && !options.dryRun) recent_.erase(plan.eniId);
  }
  if (options.dryRun) {
    for (const auto& plan : out.plans) {
      if (plan.writes()) logInfo("dry run: would write tags", {{"eni", plan.eniId}});
    }
  }
  out.observed = std::move(observed_);
  recordWrites(out.pods, failed, options, out);
  observed_ = std::move(out.observed);
}

}  // namespace eni
