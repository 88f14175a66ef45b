#include "agent/enimanager/eni_planner.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "agent/base/json.h"
#include "agent/base/strings.h"
#include "agent/dpdk/dpdk_devices.h"
#include "agent/eni/tags.h"

namespace eni {

bool selectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

namespace {

// Each name resolved through `byName` (name -> ID) is appended to `ids`; a name missing there is a
// problem. False when any name is missing.
bool resolveNames(const std::vector<std::string>& names,
                  const std::map<std::string, std::string>& byName, std::vector<std::string>& ids,
                  const std::function<void(const std::string&)>& missing) {
  bool ok = true;
  for (const auto& name : names) {
    auto it = byName.find(name);
    if (it == byName.end()) {
      missing(name);
      ok = false;
    } else {
      ids.push_back(it->second);
    }
  }
  return ok;
}

// The spec's own bounds, on what it resolved to: the device indexes base..base+n-1 must stay within
// kMaxDeviceIndex (computed without overflow: the base is checked first), and EC2 takes at most
// kMaxSecurityGroups groups per ENI.
bool withinBounds(const NodeEniSpec& spec, std::size_t subnets, std::size_t groups,
                  const std::function<void(std::string)>& problem) {
  bool ok = true;
  if (spec.deviceIndex < 1) {
    problem("deviceIndex " + std::to_string(spec.deviceIndex) +
            " is below 1 (0 is the primary ENI)");
    ok = false;
  } else if (spec.deviceIndex > kMaxDeviceIndex) {
    problem("deviceIndex " + std::to_string(spec.deviceIndex) + " is above " +
            std::to_string(kMaxDeviceIndex) + ", the highest device index the agent attaches at");
    ok = false;
  } else if (subnets > 0 &&
             subnets - 1 > static_cast<std::size_t>(kMaxDeviceIndex - spec.deviceIndex)) {
    problem("deviceIndex " + std::to_string(spec.deviceIndex) + " with " + std::to_string(subnets) +
            " subnets needs device indexes up to " +
            std::to_string(spec.deviceIndex + static_cast<std::int64_t>(subnets) - 1) + ", above " +
            std::to_string(kMaxDeviceIndex) + "; lower deviceIndex or list fewer subnets");
    ok = false;
  }
  if (groups > kMaxSecurityGroups) {
    problem(std::to_string(groups) + " security groups; EC2 allows at most " +
            std::to_string(kMaxSecurityGroups) + " per ENI");
    ok = false;
  }
  if (spec.mtu != 0 && (spec.mtu < 68 || spec.mtu > 9001)) {
    problem("mtu " + std::to_string(spec.mtu) + " is outside 68-9001");
    ok = false;
  }
  return ok;
}

void addEnis(const NodeEni& n, const std::string& nodeName, const std::string& instanceId,
             const std::vector<std::string>& subnets, const std::vector<std::string>& groups,
             std::vector<DesiredEni>& out) {
  const NodeEniSpec& spec = n.spec;
  for (std::size_t i = 0; i < subnets.size(); ++i) {
    DesiredEni d;
    d.nodeEni = n.meta.name;
    d.subnetId = subnets[i];
    d.securityGroupIds = groups;
    d.deviceIndex = spec.deviceIndex + static_cast<std::int64_t>(i);
    d.deleteOnTermination = spec.deleteOnTermination;
    d.mtu = spec.mtu;
    d.description =
        spec.description.empty() ? "eni-agent: NodeENI " + n.meta.name : spec.description;
    d.clientToken = clientTokenFor(d.nodeEni, nodeName, d.subnetId, d.deviceIndex);
    d.tags = nodeEniCreationTags(d.nodeEni, nodeName, d.subnetId, instanceId);
    out.push_back(std::move(d));
  }
}

std::string dpdkNotSupported(const NodeEniSpec& spec) {
  const std::string driver = spec.dpdkDriver.empty() ? kDefaultDpdkDriver : spec.dpdkDriver;
  return "enableDPDK: this agent runs without DPDK support (--dpdk-sysfs-root is empty), so it "
         "binds no device to " +
         driver +
         " and creates or attaches no ENI for this NodeENI (ENIs already attached are left as "
         "they are); set --dpdk-sysfs-root=/sys, or enableDPDK to false for a kernel interface";
}

}  // namespace

DesiredEnis desiredEnis(const std::string& nodeName,
                        const std::map<std::string, std::string>& nodeLabels,
                        const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                        const std::map<std::string, std::string>& subnetIdsByName,
                        const std::map<std::string, std::string>& groupIdsByName,
                        bool dpdkSupported) {
  DesiredEnis out;
  std::vector<const NodeEni*> sorted;
  sorted.reserve(nodeEnis.size());
  for (const auto& n : nodeEnis) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* a, auto* b) { return a->meta.name < b->meta.name; });
  for (const NodeEni* n : sorted) {
    if (n->meta.deleting || !selectorMatches(n->spec.nodeSelector, nodeLabels)) continue;
    const NodeEniSpec& spec = n->spec;
    if (spec.enableDpdk && !dpdkSupported) {
      out.problems.push_back({n->meta.name, dpdkNotSupported(spec), kDpdkNotSupportedReason});
      continue;
    }
    auto problem = [&](std::string why) { out.problems.push_back({n->meta.name, std::move(why)}); };
    if (spec.enableDpdk) {
      std::string why =
          dpdkSpecProblem(spec.dpdkDriver, spec.dpdkPciAddress, spec.dpdkResourceName);
      if (!why.empty()) {
        problem(why + "; fix the NodeENI");
        continue;
      }
    }
    std::vector<std::string> subnets;
    if (!spec.subnetId.empty()) subnets.push_back(spec.subnetId);
    for (const auto& s : spec.subnetIds) subnets.push_back(s);
    std::vector<std::string> names;
    if (!spec.subnetName.empty()) names.push_back(spec.subnetName);
    for (const auto& s : spec.subnetNames) names.push_back(s);
    bool ok = resolveNames(names, subnetIdsByName, subnets, [&](const std::string& name) {
      problem("no subnet is tagged Name=" + name + " in this VPC; fix subnetName/subnetNames");
    });
    std::vector<std::string> groups = spec.securityGroupIds;
    ok = resolveNames(
             spec.securityGroupNames, groupIdsByName, groups,
             [&](const std::string& name) {
               problem("no security group named " + name + " in this VPC; fix securityGroupNames");
             }) &&
         ok;
    if (subnets.empty() && names.empty()) {
      problem("no subnet: set subnetID, subnetIDs, subnetName or subnetNames");
      ok = false;
    }
    // Counted as listed, names included: each listed subnet takes a device index.
    ok = withinBounds(spec, subnetCount(spec), groups.size(), problem) && ok;
    if (ok) addEnis(*n, nodeName, instanceId, subnets, groups, out.enis);
  }
  return out;
}

std::string deleteOnTerminationNote(const NodeEni& nodeEni, std::optional<bool> legacyDefault) {
  if (!legacyDefault || *legacyDefault == nodeEni.spec.deleteOnTermination) return {};
  const auto text = [](bool b) { return b ? std::string("true") : std::string("false"); };
  return "DEFAULT_DELETE_ON_TERMINATION=" + text(*legacyDefault) +
         " (aws-multi-eni-controller's) is not applied: NodeENI " + nodeEni.meta.name +
         " keeps its spec.deleteOnTermination=" + text(nodeEni.spec.deleteOnTermination) +
         "; set it in the spec to change it";
}

std::string specHashFor(const Json::Value& spec) { return sha256Hex(toJson(spec), 8); }

std::string specHashFor(const NodeEni& nodeEni) { return sha256Hex(nodeEni.specJson, 8); }

std::size_t subnetCount(const NodeEniSpec& spec) {
  return (spec.subnetId.empty() ? 0 : 1) + spec.subnetIds.size() +
         (spec.subnetName.empty() ? 0 : 1) + spec.subnetNames.size();
}

namespace {

using RecordsByNodeEni = std::map<std::string, std::vector<const AttachmentRecord*>>;

// Why one NodeENI's records cannot stand for EC2, or "".
std::string nodeEniDisagrees(const NodeEni& n, const std::string& nodeName,
                             const std::map<std::string, std::string>& nodeLabels,
                             const std::map<std::string, std::string>& specHashes,
                             const std::vector<const AttachmentRecord*>& records,
                             const std::set<std::string>& recordedEnis) {
  const bool matches = selectorMatches(n.spec.nodeSelector, nodeLabels);
  std::vector<const NodeEniAttachment*> entries;  // this node's status entries
  for (const auto& a : n.attachments) {
    if (a.nodeId == nodeName) entries.push_back(&a);
  }
  if (n.meta.deleting) {
    // Its ENIs on this node must go, and a kill may have left one EC2 knows and no record does.
    const bool any = matches || !entries.empty() || !records.empty();
    return any ? "NodeENI " + n.meta.name + " is being deleted" : "";
  }
  if (!matches) {
    const bool any = !entries.empty() || !records.empty();
    return any ? "NodeENI " + n.meta.name + " no longer selects this node" : "";
  }
  auto hash = specHashes.find(n.meta.name);
  const std::size_t wanted = subnetCount(n.spec);
  if (wanted == 0 || records.size() != wanted) {
    return "NodeENI " + n.meta.name + " has " + std::to_string(records.size()) +
           " recorded ENIs, its spec asks for " + std::to_string(wanted);
  }
  for (const auto* r : records) {
    if (hash == specHashes.end() || r->specHash.empty() || r->specHash != hash->second) {
      return "NodeENI " + n.meta.name +
             " changed, or was not fully satisfied, since it was recorded";
    }
  }
  for (const auto* e : entries) {
    if (e->status != toString(AttachmentPhase::Attached) || recordedEnis.count(e->eniId) == 0) {
      return "this node's status entry of NodeENI " + n.meta.name + " (" + e->eniId + ", " +
             e->status + ") is not recorded";
    }
  }
  return "";
}

// IMDS against the records: every recorded ENI where recorded, and no unknown one attached.
std::string imdsDisagrees(const RecordedAttachments& recorded, const InterfaceMap& imds,
                          const std::set<std::string>& recordedEnis,
                          std::vector<ConfirmedAttachment>& attached) {
  if (!imds.skippedMacs.empty()) {
    // A stale IMDS key hides one interface: it may be an ENI the records do not know.
    const auto& [mac, why] = *imds.skippedMacs.begin();
    return "IMDS could not show interface " + mac + " on this read: " + why;
  }
  for (const auto& r : recorded.attachments) {
    const ImdsInterface* seen = nullptr;
    for (const auto& i : imds.interfaces) {
      if (i.interfaceId == r.eniId) seen = &i;
    }
    if (seen == nullptr) return "IMDS does not show " + r.eniId + " attached";
    if (r.mac.empty() || lower(seen->mac) != lower(r.mac) || seen->deviceNumber != r.deviceIndex ||
        r.attachmentId.empty()) {
      return "IMDS shows " + r.eniId + " at device " + std::to_string(seen->deviceNumber) +
             " with MAC " + seen->mac + ", not as recorded";
    }
    ConfirmedAttachment c;
    c.record = r;
    c.record.interfaceName.clear();
    c.record.phase = AttachmentPhase::Attached;
    c.record.link.clear();
    c.subnetId = seen->subnetId;
    attached.push_back(std::move(c));
  }
  for (const auto& i : imds.interfaces) {
    if (i.deviceNumber == 0 && !i.interfaceId.empty()) continue;  // the primary ENI
    if (recordedEnis.count(i.interfaceId) != 0 || recorded.otherEnis.count(i.interfaceId) != 0)
      continue;
    // Maybe an ENI a killed agent attached and never recorded: only EC2's tags tell.
    return "IMDS shows an attached ENI the records do not know: " +
           (i.interfaceId.empty() ? i.mac : i.interfaceId);
  }
  return "";
}

}  // namespace

std::string recordsDisagree(const std::string& nodeName,
                            const std::map<std::string, std::string>& nodeLabels,
                            const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                            const std::map<std::string, std::string>& specHashes,
                            const RecordedAttachments& recorded) {
  if (!recorded.instanceId.empty() && recorded.instanceId != instanceId) {
    return "the records are for instance " + recorded.instanceId;
  }
  RecordsByNodeEni byNodeEni;
  std::set<std::string> recordedEnis;
  for (const auto& r : recorded.attachments) {
    if (r.eniId.empty() || !recordedEnis.insert(r.eniId).second) {
      return "a record without an ENI, or an ENI recorded twice: " + r.eniId;
    }
    byNodeEni[r.nodeEni].push_back(&r);
  }
  std::set<std::string> known;  // NodeENIs that exist
  for (const auto& n : nodeEnis) {
    known.insert(n.meta.name);
    std::string why =
        nodeEniDisagrees(n, nodeName, nodeLabels, specHashes, byNodeEni[n.meta.name], recordedEnis);
    if (!why.empty()) return why;
  }
  for (const auto& [name, records] : byNodeEni) {
    if (!records.empty() && known.count(name) == 0) return "NodeENI " + name + " is gone";
  }
  return "";
}

std::string driftFromImds(const RecordedAttachments& recorded, const InterfaceMap& imds) {
  std::set<std::string> recordedEnis;
  for (const auto& r : recorded.attachments) recordedEnis.insert(r.eniId);
  std::vector<ConfirmedAttachment> attached;
  return imdsDisagrees(recorded, imds, recordedEnis, attached);
}

Confirmation confirmFromRecords(const std::string& nodeName,
                                const std::map<std::string, std::string>& nodeLabels,
                                const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                                const std::map<std::string, std::string>& specHashes,
                                const RecordedAttachments& recorded, const InterfaceMap& imds) {
  Confirmation out;
  out.disagreement =
      recordsDisagree(nodeName, nodeLabels, instanceId, nodeEnis, specHashes, recorded);
  if (!out.disagreement.empty()) return out;
  std::set<std::string> recordedEnis;
  for (const auto& r : recorded.attachments) recordedEnis.insert(r.eniId);
  out.disagreement = imdsDisagrees(recorded, imds, recordedEnis, out.attached);
  if (!out.disagreement.empty()) out.attached.clear();
  return out;
}

}  // namespace eni
