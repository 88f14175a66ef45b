#include "agent/eni/ownership.h"

#include "agent/eni/tags.h"

namespace eni {

std::string clientTokenFor(const std::string& owner, const std::string& nodeName,
                           const std::string& subnetId, std::int64_t deviceIndex) {
  return sha256Hex(owner + "|" + nodeName + "|" + subnetId + "|" + std::to_string(deviceIndex), 16);
}

std::vector<Tag> ownershipTags(const std::string& owner, const std::string& nodeName,
                               const std::string& subnetId, const std::string& instanceId) {
  const std::string suffix = subnetId.size() > 8 ? subnetId.substr(subnetId.size() - 8) : subnetId;
  return {{"Name", "nodeeni-" + owner + "-" + nodeName + "-" + suffix},
          {"NodeENI", owner},
          {"Node", nodeName},
          {"SubnetID", subnetId},
          {kNoManageTag, "true"},
          {kManagedByTag, "eni-agent"},
          {kInstanceIdTag, instanceId}};
}

std::vector<Tag> nodeEniCreationTags(const std::string& nodeEni, const std::string& nodeName,
                                     const std::string& subnetId, const std::string& instanceId) {
  std::vector<Tag> tags = ownershipTags(nodeEni, nodeName, subnetId, instanceId);
  tags.push_back({kLegacyManagedByTag, kLegacyManagedByValue});
  return tags;
}

std::int64_t freeDeviceIndex(std::int64_t wanted, const std::set<std::int64_t>& used) {
  while (used.count(wanted) != 0) ++wanted;
  return wanted;
}

std::string tagValue(const NetworkInterface& eni, const std::string& key) {
  for (const auto& t : eni.tags) {
    if (t.key == key) return t.value;
  }
  return {};
}

bool ownedBy(const NetworkInterface& eni, const std::string& instanceId) {
  return tagValue(eni, kManagedByTag) == "eni-agent" && tagValue(eni, kInstanceIdTag) == instanceId;
}

bool adoptable(const NetworkInterface& eni, const std::string& nodeName) {
  return tagValue(eni, kManagedByTag).empty() && !tagValue(eni, "NodeENI").empty() &&
         tagValue(eni, "Node") == nodeName &&
         tagValue(eni, kLegacyManagedByTag) == kLegacyManagedByValue &&
         whyNeverManaged(eni).empty();
}

std::string whyNeverManaged(const NetworkInterface& eni) {
  if (eni.attachment && eni.attachment->deviceIndex == 0 && eni.attachment->status != "detached") {
    return "attached at device index 0 (an instance's primary ENI)";
  }
  // The set lists the primary address too.
  if (eni.privateIpAddresses.size() > 1) {
    return "carries " + std::to_string(eni.privateIpAddresses.size() - 1) +
           " secondary private IPs (pod addresses)";
  }
  if (!eni.ipv4Prefixes.empty()) return "carries IPv4 prefixes (pod addresses)";
  if (eni.interfaceType == "trunk" || eni.interfaceType == "branch") {
    return "has interface type " + eni.interfaceType + " (pod ENIs)";
  }
  for (const auto& t : eni.tags) {
    if (t.key == kVpcCniInstanceTag) return std::string("carries VPC CNI's tag ") + t.key;
  }
  if (eni.description.rfind(kVpcCniDescriptionPrefix, 0) == 0) {
    return std::string("its description starts with ") + kVpcCniDescriptionPrefix + " (VPC CNI's)";
  }
  return {};
}

ReleaseDecision releasable(const NetworkInterface& eni, const RecordedAttachments& records,
                           const std::string& instanceId, const std::set<std::string>& creating) {
  if (std::string why = whyNeverManaged(eni); !why.empty()) return {false, why};
  if (instanceId.empty()) return {false, "this instance's ID is unknown"};
  if (!ownedBy(eni, instanceId)) {
    return {false, "it lacks eni-agent's ownership tags for instance " + instanceId};
  }
  if (eni.attachment && eni.attachment->status != "detached" &&
      eni.attachment->instanceId != instanceId) {
    return {false, "it is attached to another instance (" + eni.attachment->instanceId + ")"};
  }
  // Records that name no instance (a node state written with the tagger off carries none) count
  // only for an ENI this pass's Describe shows attached here.
  const bool attachedHere = eni.attachment && eni.attachment->status != "detached" &&
                            eni.attachment->instanceId == instanceId;
  if (records.instanceId == instanceId || (records.instanceId.empty() && attachedHere)) {
    for (const auto& r : records.attachments) {
      if (r.eniId == eni.id) return {true, "recorded as this agent's"};
    }
  }
  const std::string nodeEni = tagValue(eni, "NodeENI");
  if (!nodeEni.empty() && creating.count(nodeEni) != 0) {
    return {true, "created under the write-ahead of NodeENI " + nodeEni};
  }
  if (!records.instanceId.empty() && records.instanceId != instanceId) {
    return {false, "it is not in this instance's records (the records are instance " +
                       records.instanceId + "'s, ignored); its tags alone prove nothing"};
  }
  return {false, "it is not in this agent's records; its tags alone prove nothing"};
}

}  // namespace eni
