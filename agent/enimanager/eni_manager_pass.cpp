#include "agent/enimanager/eni_manager_pass.h"

#include <algorithm>

namespace eni {
namespace {

std::vector<Attached> fromConfirmed(const std::vector<ConfirmedAttachment>& confirmed) {
  std::vector<Attached> out;
  for (const auto& c : confirmed) {
    Attached a;
    a.mac = c.record.mac;
    a.subnetId = c.subnetId;
    a.mtu = c.record.mtu;
    a.record = c.record;
    out.push_back(std::move(a));
  }
  return out;
}

// Security groups given by ID must be in this instance's VPC; EC2 would refuse the create with a
// less helpful message.
void checkGroupVpcs(const DesiredEnis& desired, const ManagerObservation& observed,
                    ManagerPlan& plan) {
  std::set<std::string> bad;
  const std::string& vpc = observed.instance.vpcId;
  for (const auto& d : desired.enis) {
    for (const auto& g : d.securityGroupIds) {
      auto it = observed.groupVpcs.find(g);
      if (it != observed.groupVpcs.end() && it->second != vpc && bad.insert(d.nodeEni).second) {
        std::string why = "security group " + g;
        why.append(" is in ").append(it->second).append(", not in this instance's ").append(vpc);
        why.append("; use a group of the node's VPC");
        plan.problems.push_back({d.nodeEni, std::move(why)});
      }
    }
  }
}

LifecycleObservation lifecycleView(const ManagerPassInput& in, const ManagerObservation& observed,
                                   const ManagerPlan& plan) {
  LifecycleObservation view;
  view.owner = {observed.instanceId, in.nodeName};
  view.listed = observed.mine;
  view.listError = observed.mineError;
  for (const auto& n : observed.instance.networkInterfaces) {
    if (n.attachment) view.usedIndexes.insert(n.attachment->deviceIndex);
  }
  view.records = in.recorded;
  view.createStored = in.createStored;
  view.writeAheadRequired = in.writeAhead;
  for (const auto& p : plan.problems) view.problemOwners.insert(p.nodeEni);
  return view;
}

}  // namespace

ManagerPlan planManagerPass(const ManagerPassInput& in, const ManagerObservation& observed,
                            const DeleteOnTerminationMemo& memo) {
  ManagerPlan plan;
  plan.kind = observed.kind;
  plan.instanceId = observed.instanceId;
  plan.dryRun = in.dryRun;
  if (observed.kind == ObservationKind::Failed) plan.retry = true;
  if (observed.kind == ObservationKind::Confirmed)
    plan.confirmed = fromConfirmed(observed.confirmed);
  if (observed.kind != ObservationKind::Ec2) return plan;
  const DesiredEnis desired = desiredEnis(in.nodeName, in.labels, observed.instanceId, in.nodeEnis,
                                          observed.subnetIds, observed.groupIds, in.dpdk);
  plan.problems = desired.problems;
  checkGroupVpcs(desired, observed, plan);
  if (!observed.mine) {
    plan.retry = true;
    return plan;
  }
  plan.actions = planEniActions(desired.enis, lifecycleView(in, observed, plan), memo);
  for (const auto& p : plan.problems) plan.unsettled.insert(p.nodeEni);
  for (const auto& owner : plan.actions.awaitWriteAhead) plan.unsettled.insert(owner);
  for (const auto& n : observed.instance.networkInterfaces) {
    if (n.attachment) plan.attachedHere.insert(n.id);
  }
  return plan;
}

namespace {

AttachmentRecord heldRecord(const NetworkInterface& eni, const std::string& owner,
                            AttachmentPhase phase) {
  AttachmentRecord held;
  held.nodeEni = owner;
  held.eniId = eni.id;
  held.mac = eni.macAddress;
  if (eni.attachment) {
    held.attachmentId = eni.attachment->attachmentId;
    held.deviceIndex = eni.attachment->deviceIndex;
  }
  held.phase = phase;
  return held;
}

// Attached for every ensure that got there; a problem (and a retry) for every one that did not.
void recordEnsured(const ManagerPlan& plan, const std::vector<EnsureResult>& ensured,
                   std::set<std::string>& unsettled, ManagerRecord& out) {
  for (std::size_t i = 0; i < ensured.size() && i < plan.actions.ensure.size(); ++i) {
    const EnsureResult& r = ensured[i];
    const EnsureStep& step = plan.actions.ensure[i];
    if (r.failure) {
      out.problems.push_back({r.owner, ensureFailureText(r, step)});
      const bool create = r.failure->step == EniActionKind::Create;
      out.retry = out.retry || !create || r.failure->error.retryable();
      unsettled.insert(r.owner);
      continue;
    }
    if (r.deleteOnTermination) {
      out.retry = true;
      unsettled.insert(r.owner);
    }
    Attached a;
    a.mac = r.eni.macAddress;
    a.subnetId = step.desired.subnetId;
    a.mtu = step.desired.mtu;
    a.record = heldRecord(r.eni, r.owner, AttachmentPhase::Attached);
    a.record.mtu = step.desired.mtu;
    out.attached.push_back(std::move(a));
  }
}

// Attached here and not eni-agent's (every ENI it owns for this instance carries the Node tag,
// so the list has them all, and this pass's own are in its results). IMDS counts too, since the
// next check compares against it.
std::set<std::string> foreignEnis(const ManagerPlan& plan, const std::vector<EnsureResult>& ensured,
                                  const std::optional<InterfaceMap>& imds) {
  std::set<std::string> owned(plan.actions.wanted);
  for (const auto& r : plan.actions.release) owned.insert(r.eni.id);
  for (const auto& h : plan.actions.held) owned.insert(h.eni.id);
  for (const auto& r : ensured) owned.insert(r.eni.id);
  std::set<std::string> out;
  for (const auto& id : plan.attachedHere) {
    if (owned.count(id) == 0) out.insert(id);
  }
  if (imds) {
    for (const auto& i : imds->interfaces) {
      if (!i.interfaceId.empty() && owned.count(i.interfaceId) == 0) out.insert(i.interfaceId);
    }
  }
  return out;
}

}  // namespace

ManagerRecord recordManagerPass(const ManagerPassInput& in, const ManagerPlan& plan,
                                const std::vector<EnsureResult>& ensured,
                                const std::vector<ReleaseResult>& released,
                                const std::optional<InterfaceMap>& imds) {
  ManagerRecord out;
  out.instanceId = plan.instanceId;
  out.retry = plan.retry;
  out.problems = plan.problems;
  if (plan.kind == ObservationKind::Confirmed) {
    out.attached = plan.confirmed;
    out.complete = out.confirmed = true;
    return out;
  }
  if (plan.kind != ObservationKind::Ec2 || plan.dryRun || out.retry) return out;
  std::set<std::string> unsettled = plan.unsettled;
  recordEnsured(plan, ensured, unsettled, out);
  for (auto& a : out.attached) {
    auto hash = in.specHashes.find(a.record.nodeEni);
    if (unsettled.count(a.record.nodeEni) == 0 && hash != in.specHashes.end())
      a.record.specHash = hash->second;
  }
  for (const auto& h : plan.actions.held)
    out.held.push_back(heldRecord(h.eni, h.owner, AttachmentPhase::Kept));
  for (const auto& r : released) {
    if (r.outcome != ReleaseOutcome::Failed) continue;
    out.retry = true;
    out.held.push_back(heldRecord(r.eni, r.owner, AttachmentPhase::Releasing));
  }
  out.needWriteAhead = plan.actions.awaitWriteAhead;
  out.foreign = foreignEnis(plan, ensured, imds);
  out.complete = true;
  return out;
}

}  // namespace eni
