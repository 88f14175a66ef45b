#include "agent/eni/eni_actions.h"

#include <algorithm>

namespace eni {

bool DeleteOnTerminationMemo::settled(const std::string& attachmentId, bool value,
                                      std::optional<bool> shown) const {
  if (shown && *shown == value) return true;
  auto it = values_.find(attachmentId);
  return it != values_.end() && it->second == value;
}

std::string_view toString(EniActionKind kind) {
  switch (kind) {
    case EniActionKind::Keep:
      return "keep";
    case EniActionKind::Adopt:
      return "adopt";
    case EniActionKind::Create:
      return "create";
    case EniActionKind::AwaitWriteAhead:
      return "await-write-ahead";
    case EniActionKind::Attach:
      return "attach";
    case EniActionKind::SetDeleteOnTermination:
      return "set-delete-on-termination";
    case EniActionKind::Release:
      return "release";
    case EniActionKind::Hold:
      return "hold";
    case EniActionKind::Refuse:
      return "refuse";
    case EniActionKind::Problem:
      return "problem";
  }
  return "unknown";
}

std::vector<EniActionKind> EnsureStep::kinds() const {
  std::vector<EniActionKind> out;
  if (adopt) out.push_back(EniActionKind::Adopt);
  if (create) out.push_back(EniActionKind::Create);
  if (attachAt) out.push_back(EniActionKind::Attach);
  if (setDeleteOnTermination) out.push_back(EniActionKind::SetDeleteOnTermination);
  if (out.empty()) out.push_back(EniActionKind::Keep);
  return out;
}

namespace {

bool attachedHere(const NetworkInterface& eni, const std::string& instanceId) {
  return eni.attachment && eni.attachment->instanceId == instanceId &&
         eni.attachment->status != "detached" && !eni.attachment->attachmentId.empty();
}

bool attachableHere(const NetworkInterface& eni, const std::string& instanceId) {
  return !eni.attachment || eni.attachment->status == "detached" ||
         eni.attachment->instanceId.empty() || eni.attachment->instanceId == instanceId;
}

bool ofThisMode(const NetworkInterface& eni, const LifecycleObservation& obs) {
  return tagValue(eni, "NodeENI").rfind(obs.ownerPrefix, 0) == 0;
}

bool isRecorded(const std::string& eniId, const RecordedAttachments& records) {
  return std::any_of(records.attachments.begin(), records.attachments.end(),
                     [&](const AttachmentRecord& r) { return r.eniId == eniId; });
}

// The first listed ENI that may serve `d`; refusals of ENIs whyNeverManaged() names go to `out`.
const NetworkInterface* findFor(const DesiredEni& d, const LifecycleObservation& obs,
                                EniActions& out) {
  const std::string& me = obs.owner.instanceId;
  for (const auto& e : *obs.listed) {
    if (tagValue(e, "NodeENI") != d.nodeEni || tagValue(e, "SubnetID") != d.subnetId) continue;
    if (!(ownedBy(e, me) || adoptable(e, obs.owner.nodeName)) || !ofThisMode(e, obs)) continue;
    if (out.wanted.count(e.id) != 0) continue;
    if (std::string why = whyNeverManaged(e); !why.empty()) {
      out.refused.push_back({e, d.nodeEni, why, true});
      continue;
    }
    if (attachableHere(e, me)) return &e;
  }
  return nullptr;
}

// The step for a desired ENI that is not live: found (maybe adopted) or created, then attached.
void planFoundOrCreated(const DesiredEni& d, const LifecycleObservation& obs,
                        const DeleteOnTerminationMemo& memo, std::set<std::int64_t>& used,
                        EniActions& out) {
  const std::string& me = obs.owner.instanceId;
  EnsureStep step;
  step.desired = d;
  if (const NetworkInterface* found = findFor(d, obs, out); found != nullptr) {
    step.eni = *found;
    step.adopt = adoptable(*found, obs.owner.nodeName);
    step.recorded = isRecorded(found->id, obs.records);
  } else if (obs.writeAheadRequired && obs.createStored.count(d.nodeEni) == 0) {
    out.awaitWriteAhead.push_back(d.nodeEni);
    return;
  } else {
    step.create = true;
  }
  if (step.create || !attachedHere(step.eni, me)) {
    step.attachAt = freeDeviceIndex(d.deviceIndex, used);
    used.insert(*step.attachAt);
  }
  std::optional<bool> shown;
  if (!step.attachAt) shown = step.eni.attachment->deleteOnTermination;
  step.setDeleteOnTermination =
      step.attachAt.has_value() ||
      !memo.settled(step.eni.attachment->attachmentId, d.deleteOnTermination, shown);
  if (!step.create) out.wanted.insert(step.eni.id);
  out.ensure.push_back(std::move(step));
}

EnsureStep liveStep(const DesiredEni& d, const NetworkInterface& eni,
                    const DeleteOnTerminationMemo& memo) {
  EnsureStep step;
  step.desired = d;
  step.eni = eni;
  step.recorded = true;
  const std::string& attachment = eni.attachment->attachmentId;
  if (memo.known(attachment)) {
    step.setDeleteOnTermination = !memo.settled(attachment, d.deleteOnTermination, std::nullopt);
  } else {
    step.assumeDeleteOnTermination = true;
  }
  return step;
}

void planDesired(const std::vector<DesiredEni>& desired, const LifecycleObservation& obs,
                 const DeleteOnTerminationMemo& memo, EniActions& out) {
  std::set<std::int64_t> used = obs.usedIndexes;
  for (const auto& d : desired) {
    if (obs.problemOwners.count(d.nodeEni) != 0) continue;
    auto live = obs.live.find(d.nodeEni);
    if (live != obs.live.end() && live->second.subnetId == d.subnetId && live->second.attachment) {
      out.wanted.insert(live->second.id);
      out.ensure.push_back(liveStep(d, live->second, memo));
      continue;
    }
    if (!obs.listed) {
      out.problems.push_back({d.nodeEni, obs.listError, true});
      continue;
    }
    planFoundOrCreated(d, obs, memo, used, out);
  }
}

// Listed ENIs nothing wants: eni-agent's by its tags and by its records, or left alone.
void planUnwantedListed(const LifecycleObservation& obs, EniActions& out) {
  const std::string& me = obs.owner.instanceId;
  std::set<std::string> refused;  // already, as never to be adopted or attached
  for (const auto& n : out.refused) refused.insert(n.eni.id);
  for (const auto& e : *obs.listed) {
    if (out.wanted.count(e.id) != 0 || !ownedBy(e, me) || !ofThisMode(e, obs)) continue;
    if (refused.count(e.id) != 0) continue;
    const std::string owner = tagValue(e, "NodeENI");
    const ReleaseDecision d = releasable(e, obs.records, me, obs.createStored);
    if (!d.release) {
      out.refused.push_back({e, owner, d.reason, false});
    } else if (obs.problemOwners.count(owner) != 0) {
      out.held.push_back({e, owner, "its owner has a problem this pass", false});
    } else {
      out.release.push_back({e, owner, true});
    }
  }
}

// Recorded ENIs nothing wants, when the pass listed nothing: release() verifies each by its own
// Describe.
void planUnwantedRecorded(const LifecycleObservation& obs, EniActions& out) {
  const std::string& records = obs.records.instanceId;
  if (!records.empty() && records != obs.owner.instanceId) return;  // they license nothing
  std::set<std::string> seen;
  for (const auto& r : obs.records.attachments) {
    if (r.eniId.empty() || out.wanted.count(r.eniId) != 0 || !seen.insert(r.eniId).second) continue;
    NetworkInterface eni;
    eni.id = r.eniId;
    if (obs.problemOwners.count(r.nodeEni) != 0) {
      out.held.push_back({eni, r.nodeEni, "its owner has a problem this pass", false});
    } else {
      out.release.push_back({eni, r.nodeEni, false});
    }
  }
}

}  // namespace

EniActions planEniActions(const std::vector<DesiredEni>& desired, const LifecycleObservation& obs,
                          const DeleteOnTerminationMemo& memo) {
  EniActions out;
  planDesired(desired, obs, memo, out);
  if (obs.listed) {
    planUnwantedListed(obs, out);
  } else {
    planUnwantedRecorded(obs, out);
  }
  return out;
}

void holdReleasesOf(const std::set<std::string>& failedOwners, EniActions& actions) {
  auto kept =
      std::stable_partition(actions.release.begin(), actions.release.end(),
                            [&](const ReleaseStep& r) { return failedOwners.count(r.owner) == 0; });
  for (auto it = kept; it != actions.release.end(); ++it) {
    actions.held.push_back({it->eni, it->owner, "its owner failed this pass", false});
  }
  actions.release.erase(kept, actions.release.end());
}

}  // namespace eni
