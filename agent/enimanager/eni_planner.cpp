#include "agent/enimanager/eni_planner.h"

#include <openssl/evp.h>

#include <algorithm>

namespace eni {

bool selectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::string clientTokenFor(const std::string& nodeEni, const std::string& nodeName,
                           const std::string& subnetId, std::int64_t deviceIndex) {
  const std::string input =
      nodeEni + "|" + nodeName + "|" + subnetId + "|" + std::to_string(deviceIndex);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < 16 && i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::vector<Tag> ownershipTags(const std::string& nodeEni, const std::string& nodeName,
                               const std::string& subnetId, const std::string& instanceId) {
  const std::string suffix = subnetId.size() > 8 ? subnetId.substr(subnetId.size() - 8) : subnetId;
  return {{"Name", "nodeeni-" + nodeEni + "-" + nodeName + "-" + suffix},
          {"NodeENI", nodeEni},
          {"Node", nodeName},
          {"SubnetID", subnetId},
          {kNoManageTag, "true"},
          {kManagedByTag, "eni-agent"},
          {kInstanceIdTag, instanceId}};
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
         tagValue(eni, "Node") == nodeName;
}

DesiredEnis desiredEnis(const std::string& nodeName,
                        const std::map<std::string, std::string>& nodeLabels,
                        const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                        const std::map<std::string, std::string>& subnetIdsByName,
                        const std::map<std::string, std::string>& groupIdsByName) {
  DesiredEnis out;
  std::vector<const NodeEni*> sorted;
  for (const auto& n : nodeEnis) sorted.push_back(&n);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* a, auto* b) { return a->meta.name < b->meta.name; });
  for (const NodeEni* n : sorted) {
    if (n->meta.deleting || !selectorMatches(n->spec.nodeSelector, nodeLabels)) continue;
    const NodeEniSpec& spec = n->spec;
    auto problem = [&](std::string why) { out.problems.push_back({n->meta.name, std::move(why)}); };
    std::vector<std::string> subnets;
    if (!spec.subnetId.empty()) subnets.push_back(spec.subnetId);
    for (const auto& s : spec.subnetIds) subnets.push_back(s);
    std::vector<std::string> names;
    if (!spec.subnetName.empty()) names.push_back(spec.subnetName);
    for (const auto& s : spec.subnetNames) names.push_back(s);
    bool ok = true;
    for (const auto& name : names) {
      auto it = subnetIdsByName.find(name);
      if (it == subnetIdsByName.end()) {
        problem("no subnet is tagged Name=" + name + " in this VPC; fix subnetName/subnetNames");
        ok = false;
      } else {
        subnets.push_back(it->second);
      }
    }
    std::vector<std::string> groups = spec.securityGroupIds;
    for (const auto& name : spec.securityGroupNames) {
      auto it = groupIdsByName.find(name);
      if (it == groupIdsByName.end()) {
        problem("no security group named " + name + " in this VPC; fix securityGroupNames");
        ok = false;
      } else {
        groups.push_back(it->second);
      }
    }
    if (subnets.empty() && names.empty()) {
      problem("no subnet: set subnetID, subnetIDs, subnetName or subnetNames");
      ok = false;
    }
    if (spec.deviceIndex < 1) {
      problem("deviceIndex " + std::to_string(spec.deviceIndex) +
              " is below 1 (0 is the primary ENI)");
      ok = false;
    }
    if (spec.mtu != 0 && (spec.mtu < 68 || spec.mtu > 9001)) {
      problem("mtu " + std::to_string(spec.mtu) + " is outside 68-9001");
      ok = false;
    }
    if (!ok) continue;
    for (std::size_t i = 0; i < subnets.size(); ++i) {
      DesiredEni d;
      d.nodeEni = n->meta.name;
      d.subnetId = subnets[i];
      d.securityGroupIds = groups;
      d.deviceIndex = spec.deviceIndex + static_cast<std::int64_t>(i);
      d.deleteOnTermination = spec.deleteOnTermination;
      d.mtu = spec.mtu;
      d.description =
          spec.description.empty() ? "eni-agent: NodeENI " + n->meta.name : spec.description;
      d.clientToken = clientTokenFor(d.nodeEni, nodeName, d.subnetId, d.deviceIndex);
      d.tags = ownershipTags(d.nodeEni, nodeName, d.subnetId, instanceId);
      out.enis.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace eni
