#include "agent/host/host_worker.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "agent/base/log.h"
#include "agent/base/strings.h"
#include "agent/host/host_tags.h"

namespace eni {

namespace {

// IMDS skipped these interfaces on this read (a stale key). EC2's view of the instance stands in
// for them, so their records stay and their device indexes count as taken.
void fillSkipped(InterfaceMap& map, const std::map<std::string, NetworkInterface>& observed,
                 const std::string& instanceId) {
  std::set<std::string> skipped;
  for (const auto& [mac, why] : map.skippedMacs) skipped.insert(lower(mac));
  for (const auto& [id, e] : observed) {
    if (!e.attachment || e.attachment->instanceId != instanceId ||
        e.attachment->status == "detached" || skipped.count(lower(e.macAddress)) == 0) {
      continue;
    }
    ImdsInterface i;
    i.mac = lower(e.macAddress);
    i.interfaceId = e.id;
    i.deviceNumber = e.attachment->deviceIndex;
    i.localIpv4s = e.privateIpAddresses;
    if (i.localIpv4s.empty() && !e.privateIpAddress.empty()) i.localIpv4s = {e.privateIpAddress};
    i.ipv4Prefixes = e.ipv4Prefixes;
    i.ipv6s = e.ipv6Addresses;
    i.subnetId = e.subnetId;
    i.vpcId = e.vpcId;
    i.securityGroupIds = e.securityGroupIds;
    map.interfaces.push_back(std::move(i));
  }
}

}  // namespace

void HostWorker::run(const HostPassInput& in, HostWork& out, const OnLinkWanted& wanted) {
  out.state = in.state;
  if (!observe(in, out.observed)) {
    out.problems = out.observed.problems;
    out.retry = true;
    return;
  }
  apply(in, out, wanted);
  tags(in, out);
}

bool HostWorker::observe(const HostPassInput& in, HostObservation& out) {
  auto identity = imds_.identity();
  if (!identity) {
    out.problems.push_back("cannot read the instance identity from IMDS: " +
                           identity.error().describe() + "; will retry");
    return false;
  }
  out.instanceId = identity->instanceId;
  const std::string& me = out.instanceId;
  if (!in.state.instanceId.empty() && in.state.instanceId != me) {
    logWarn("the state file belongs to another instance, starting cold",
            {{"state_instance", in.state.instanceId}, {"instance", me}});
    out.reset = true;
  }
  auto attached = imds_.interfaces();
  if (!attached) {
    out.problems.push_back("cannot read this instance's interfaces from IMDS: " +
                           attached.error().describe() + "; will retry");
    return false;
  }
  out.attached = std::move(*attached);
  // ENIs the state does not know yet (a cold start, or attached by someone else meanwhile), or
  // every one on a drift check: one filtered Describe.
  bool describe = in.verify || !out.attached.skippedMacs.empty();
  for (const auto& i : out.attached.interfaces) {
    if (out.reset || in.state.enis.count(i.interfaceId) == 0) describe = true;
  }
  if (describe) {
    auto enis = ec2_.describeNetworkInterfaces({}, {{"attachment.instance-id", {me}}});
    if (!enis) {
      out.problems.push_back("cannot describe this instance's ENIs: " + enis.error().describe() +
                             "; will retry");
      return false;
    }
    for (auto& e : *enis) out.described[e.id] = std::move(e);
  }
  fillSkipped(out.attached, out.described, me);
  out.ok = true;
  resolve(in, out);
  lifecycleView(in, out);
  return true;
}

// host.json's interfaces with their subnets: a Name tag is looked up once in this VPC.
void HostWorker::resolve(const HostPassInput& in, HostObservation& out) {
  std::string vpcId;
  for (const auto& i : out.attached.interfaces) {
    // vpc-id is optional in IMDS (a stale key reads as empty): never let an empty one win.
    if (!i.vpcId.empty() && (i.deviceNumber == 0 || vpcId.empty())) vpcId = i.vpcId;
  }
  for (const HostInterface& want : in.config.interfaces) {
    const std::string where = "interface " + want.key() + ": ";
    std::string subnetId = want.subnetId;
    if (subnetId.empty()) {
      auto cached = subnetNameCache_.find(want.subnetName);
      if (cached == subnetNameCache_.end()) {
        auto subnets =
            ec2_.describeSubnets({}, {{"tag:Name", {want.subnetName}}, {"vpc-id", {vpcId}}});
        if (!subnets || subnets->size() != 1) {
          std::string why = where;
          if (subnets) {
            why.append(std::to_string(subnets->size())).append(" subnets are tagged Name=");
            why.append(want.subnetName).append(" in ").append(vpcId);
            why.append("; fix subnetName or use subnetID");
          } else {
            why.append("cannot look up subnet ").append(want.subnetName).append(": ");
            why.append(subnets.error().describe()).append("; will retry");
          }
          out.problems.push_back(std::move(why));
          out.retry = out.retry || !subnets;
          out.lifecycle.problemOwners.insert(want.key());
          continue;
        }
        cached = subnetNameCache_.emplace(want.subnetName, (*subnets)[0].id).first;
      }
      subnetId = cached->second;
    }
    out.desired.push_back(hostDesired(want, subnetId, out.instanceId));
  }
}

void HostWorker::lifecycleView(const HostPassInput& in, HostObservation& out) {
  const std::string& me = out.instanceId;
  LifecycleObservation& view = out.lifecycle;
  view.owner = {me, me};
  view.ownerPrefix = "host-";
  const std::vector<AttachmentRecord> none;
  const auto& records = out.reset ? none : in.state.attachments;
  for (const auto& i : out.attached.interfaces) view.usedIndexes.insert(i.deviceNumber);
  // Recorded and still attached: no EC2 call (the plan checks the subnet).
  for (const auto& r : records) {
    if (r.phase == AttachmentPhase::Releasing) continue;
    for (const auto& i : out.attached.interfaces) {
      if (i.interfaceId != r.eniId) continue;
      NetworkInterface live;
      live.id = r.eniId;
      live.subnetId = i.subnetId;
      live.macAddress = i.mac;
      live.attachment = EniAttachment{r.attachmentId, me, i.deviceNumber, "attached", false};
      view.live[r.nodeEni] = live;
    }
  }
  view.records = {me, records, {}};
  if (!out.reset) view.createStored = in.createStored;
  bool needList = !view.createStored.empty() && !in.dryRun;
  for (const auto& d : out.desired) {
    auto live = view.live.find(d.nodeEni);
    needList = needList || live == view.live.end() || live->second.subnetId != d.subnetId;
  }
  if (!needList) return;
  auto listed = lifecycle_.findOwned(OwnedFilter::byInstance(me));
  if (listed) {
    view.listed = std::move(*listed);
  } else {
    view.listError =
        "cannot list the ENIs eni-agent owns on this instance: " + listed.error().describe();
  }
}

void HostWorker::apply(const HostPassInput& in, HostWork& out, const OnLinkWanted& wanted) {
  const HostObservation& observed = out.observed;
  out.actions = planEniActions(observed.desired, observed.lifecycle, memo_);
  if (in.dryRun) {
    logDryRun(out.actions);
  } else {
    const Ownership owner{observed.instanceId, observed.instanceId};
    for (const auto& step : out.actions.ensure) {
      const auto mtu = static_cast<std::uint32_t>(std::max<std::int64_t>(step.desired.mtu, 0));
      OnEniKnown known;
      if (wanted) known = [&](const NetworkInterface& eni) { wanted(eni.macAddress, mtu); };
      out.ensured.push_back(lifecycle_.ensureAttached(step, owner, memo_, known));
    }
  }
  out.interfaces = recordHostInterfaces(in, observed, out.actions, out.ensured);
  subnetCidrs(out.interfaces, observed);
  if (observed.reset) out.state = NodeState{};
  out.state.instanceId = observed.instanceId;
  out.state.attachments = out.interfaces.records;
  out.problems = observed.problems;
  out.problems.insert(out.problems.end(), out.interfaces.problems.begin(),
                      out.interfaces.problems.end());
  out.retry = observed.retry || out.interfaces.retry;
}

void HostWorker::subnetCidrs(HostInterfaces& interfaces, const HostObservation& observed) {
  for (auto& link : interfaces.links) {
    if (!(link.configureAddress || link.policyRouting) || link.mac.empty()) continue;
    if (!link.subnetCidr.empty()) continue;
    std::string subnetId;
    for (const auto& d : observed.desired) {
      if (d.nodeEni == link.key) subnetId = d.subnetId;
    }
    auto cidr = subnetCidrCache_.find(subnetId);
    if (cidr == subnetCidrCache_.end()) {
      auto text = imds_.get("network/interfaces/macs/" + link.mac + "/subnet-ipv4-cidr-block");
      if (text) cidr = subnetCidrCache_.emplace(subnetId, *text).first;
    }
    if (cidr != subnetCidrCache_.end()) link.subnetCidr = cidr->second;
  }
}

void HostWorker::tags(const HostPassInput& in, HostWork& out) {
  HostTagStage stage(ec2_, lifecycle_, in.dryRun);
  std::set<std::string> leaving;  // to be released: not worth tagging
  for (const auto& r : out.actions.release) leaving.insert(r.eni.id);
  std::map<std::string, NetworkInterface> observed = out.observed.described;
  for (const auto& [id, eni] : out.interfaces.attachedNow) observed[id] = eni;
  stage.run(in.config.tags, out.observed.attached, out.interfaces.attachedNow, leaving, observed,
            out.state);
  out.enis = stage.enis();
  out.problems.insert(out.problems.end(), stage.problems().begin(), stage.problems().end());
  out.retry = out.retry || stage.retry();
}

}  // namespace eni
