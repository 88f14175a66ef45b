#include "agent/enimanager/manager_worker.h"

#include <algorithm>

#include "agent/base/log.h"

namespace eni {

bool ManagerWorker::identify(const ManagerPassInput& in, ManagerObservation& out) {
  out.instanceId = in.instanceId;
  if (!out.instanceId.empty()) return true;
  auto id = imds_.identity();
  if (!id) {
    logWarn("cannot read the instance identity, will retry", {{"error", id.error().describe()}});
    return false;
  }
  out.instanceId = id->instanceId;
  return true;
}

bool ManagerWorker::confirm(const ManagerPassInput& in, ManagerObservation& out) {
  // What the records say without IMDS first: a NodeENI changed or deleted needs EC2 whatever IMDS
  // shows, and the walk (a dozen local requests per interface) would only delay it.
  if (std::string why = recordsDisagree(in.nodeName, in.labels, out.instanceId, in.nodeEnis,
                                        in.specHashes, in.recorded);
      !why.empty()) {
    logInfo("the recorded NodeENI attachments cannot stand, reading EC2", {{"reason", why}});
    return false;
  }
  if (!out.imds) {  // a drift check that found IMDS disagreeing has read it already
    auto interfaces = imds_.interfaces();
    if (!interfaces) {
      logInfo("cannot read this instance's interfaces from IMDS, reading EC2",
              {{"error", interfaces.error().describe()}});
      return false;
    }
    out.imds = std::move(*interfaces);
  }
  Confirmation c = confirmFromRecords(in.nodeName, in.labels, out.instanceId, in.nodeEnis,
                                      in.specHashes, in.recorded, *out.imds);
  if (!c.disagreement.empty()) {
    logInfo("the recorded NodeENI attachments do not match IMDS, reading EC2",
            {{"reason", c.disagreement}});
    return false;
  }
  logInfo("confirmed the NodeENI attachments from the records and IMDS, no EC2 read",
          {{"attachments", c.attached.size()}});
  out.confirmed = std::move(c.attached);
  out.kind = ObservationKind::Confirmed;
  return true;
}

bool ManagerWorker::noDrift(const ManagerPassInput& in, ManagerObservation& out) {
  if (in.recorded.instanceId != out.instanceId) return false;
  auto interfaces = imds_.interfaces();
  if (!interfaces) return false;  // confirm() reads it again and says why
  if (const std::string why = driftFromImds(in.recorded, *interfaces); !why.empty()) {
    logInfo("NodeENI drift check: IMDS does not show the recorded ENIs as recorded",
            {{"reason", why}});
    out.imds = std::move(*interfaces);  // confirm() and the EC2 pass use this read
    return false;
  }
  out.kind = ObservationKind::NoDrift;
  return true;
}

ManagerObservation ManagerWorker::observe(const ManagerPassInput& in) {
  ManagerObservation out;
  if (!identify(in, out)) return out;
  if (in.nothingHere) {
    out.kind = ObservationKind::NothingHere;
    return out;
  }
  if (in.driftCheck && in.mayConfirm && noDrift(in, out)) return out;
  if (in.mayConfirm && confirm(in, out)) return out;
  const std::string& me = out.instanceId;
  if (in.recorded.instanceId != me && !in.recorded.attachments.empty()) {
    logWarn("the node state's NodeENI records are not this instance's, ignoring them",
            {{"records_instance", in.recorded.instanceId}, {"instance", me}});
  }
  auto instance = ec2_.describeInstance(me);
  if (!instance) {
    logWarn("cannot describe this instance, will retry", {{"error", instance.error().describe()}});
    return out;
  }
  out.instance = std::move(*instance);
  out.kind = ObservationKind::Ec2;
  resolveNames(in, out);
  readGroupVpcs(in, out);
  auto mine = lifecycle_.findOwned(OwnedFilter::byNode(in.nodeName));
  if (!mine) {
    logWarn("cannot list this node's ENIs, will retry", {{"error", mine.error().describe()}});
    out.mineError = "cannot list this node's ENIs: " + mine.error().describe();
  } else {
    out.mine = std::move(*mine);
  }
  return out;
}

// Names -> IDs, only for what matching NodeENIs name; resolved once and cached, so only unknown
// names cost a call.
void ManagerWorker::resolveNames(const ManagerPassInput& in, ManagerObservation& out) {
  std::vector<std::string> unknownSubnets, unknownGroups;
  auto unknown = [](const std::map<std::string, std::string>& cache, const std::string& name,
                    std::vector<std::string>& list) {
    if (cache.count(name) == 0 && std::find(list.begin(), list.end(), name) == list.end())
      list.push_back(name);
  };
  for (const auto& n : in.nodeEnis) {
    if (n.meta.deleting || !selectorMatches(n.spec.nodeSelector, in.labels)) continue;
    if (!n.spec.subnetName.empty()) unknown(subnetNameCache_, n.spec.subnetName, unknownSubnets);
    for (const auto& s : n.spec.subnetNames) unknown(subnetNameCache_, s, unknownSubnets);
    for (const auto& g : n.spec.securityGroupNames) unknown(groupNameCache_, g, unknownGroups);
  }
  const std::string& vpc = out.instance.vpcId;
  if (!unknownSubnets.empty()) {
    auto subnets = ec2_.describeSubnets({}, {{"tag:Name", unknownSubnets}, {"vpc-id", {vpc}}});
    for (const auto& s : subnets.value_or(std::vector<Subnet>{})) {
      for (const auto& t : s.tags) {
        if (t.key == "Name") subnetNameCache_[t.value] = s.id;
      }
    }
  }
  if (!unknownGroups.empty()) {
    auto groups =
        ec2_.describeSecurityGroups({}, {{"group-name", unknownGroups}, {"vpc-id", {vpc}}});
    for (const auto& g : groups.value_or(std::vector<SecurityGroup>{}))
      groupNameCache_[g.name] = g.id;
  }
  out.subnetIds = subnetNameCache_;
  out.groupIds = groupNameCache_;
}

// Each desired group's VPC, read once.
void ManagerWorker::readGroupVpcs(const ManagerPassInput& in, ManagerObservation& out) {
  const DesiredEnis desired = desiredEnis(in.nodeName, in.labels, out.instanceId, in.nodeEnis,
                                          out.subnetIds, out.groupIds, in.dpdk);
  std::vector<std::string> unseen;
  for (const auto& d : desired.enis) {
    for (const auto& g : d.securityGroupIds) {
      if (groupVpcCache_.count(g) == 0 &&
          std::find(unseen.begin(), unseen.end(), g) == unseen.end())
        unseen.push_back(g);
    }
  }
  if (!unseen.empty()) {
    auto groups = ec2_.describeSecurityGroups({}, {{"group-id", unseen}});
    for (const auto& g : groups.value_or(std::vector<SecurityGroup>{}))
      groupVpcCache_[g.id] = g.vpcId;
  }
  out.groupVpcs = groupVpcCache_;
}

std::optional<InterfaceMap> ManagerWorker::interfaces() {
  auto interfaces = imds_.interfaces();
  if (!interfaces) return std::nullopt;
  return std::move(*interfaces);
}

std::vector<EnsureResult> ManagerWorker::apply(const ManagerPassInput& in, const ManagerPlan& plan,
                                               const OnLinkWanted& wanted) {
  std::vector<EnsureResult> out;
  if (plan.kind == ObservationKind::Confirmed) {
    // The spec hash says DeleteOnTermination was set to the spec's value on this attachment.
    for (const auto& a : plan.confirmed) {
      for (const auto& n : in.nodeEnis) {
        if (n.meta.name == a.record.nodeEni)
          memo_.set(a.record.attachmentId, n.spec.deleteOnTermination);
      }
    }
    return out;
  }
  if (plan.dryRun) {
    logDryRun(plan.actions);
    return out;
  }
  const Ownership owner{plan.instanceId, in.nodeName};
  for (const auto& step : plan.actions.ensure) {
    const auto mtu = static_cast<std::uint32_t>(std::max<std::int64_t>(step.desired.mtu, 0));
    OnEniKnown known;
    if (wanted) known = [&](const NetworkInterface& eni) { wanted(eni.macAddress, mtu); };
    out.push_back(lifecycle_.ensureAttached(step, owner, memo_, known));
  }
  return out;
}

}  // namespace eni
