#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/kube/objects.h"
#include "ec2/aws_types.h"

namespace eni {

inline constexpr const char* kManagedByTag = "eni-agent.io/managed-by";
inline constexpr const char* kInstanceIdTag = "eni-agent.io/instance-id";
inline constexpr const char* kNoManageTag = "node.k8s.amazonaws.com/no_manage";
inline constexpr const char* kNodeEniFinalizer = "nodeeni.networking.k8s.aws/finalizer";

/// One ENI this node should have: a (NodeENI, subnet) pair.
struct DesiredEni {
  std::string nodeEni;
  std::string subnetId;
  std::vector<std::string> securityGroupIds;
  std::int64_t deviceIndex = 1;  // base + i; moved past used indexes when attaching
  bool deleteOnTermination = true;
  std::int64_t mtu = 0;
  std::string description;
  std::string clientToken;
  std::vector<Tag> tags;
};

struct NodeEniProblem {
  std::string nodeEni;
  std::string message;
};

struct DesiredEnis {
  std::vector<DesiredEni> enis;
  std::vector<NodeEniProblem> problems;
};

/// Kubernetes label-selector semantics: every key must match; an empty selector selects all.
bool selectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels);

/// What this node should have, from the NodeENIs that select it. Subnet and security-group names
/// are looked up in the maps given (name -> ID); a name missing there, no subnet at all, a device
/// index below 1 or an MTU outside 68-9001 is a problem for that NodeENI, which then gets nothing
/// new (its existing ENIs are left alone). NodeENIs being deleted want nothing. Pure.
DesiredEnis desiredEnis(const std::string& nodeName,
                        const std::map<std::string, std::string>& nodeLabels,
                        const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                        const std::map<std::string, std::string>& subnetIdsByName,
                        const std::map<std::string, std::string>& groupIdsByName);

/// The tags an ENI made for `desired` carries; ownership is read from them.
std::vector<Tag> ownershipTags(const std::string& nodeEni, const std::string& nodeName,
                               const std::string& subnetId, const std::string& instanceId);
/// The idempotency token for (NodeENI, node, subnet, device index): 32 hex characters.
std::string clientTokenFor(const std::string& nodeEni, const std::string& nodeName,
                           const std::string& subnetId, std::int64_t deviceIndex);

/// The lowest free device index at or above `wanted`.
std::int64_t freeDeviceIndex(std::int64_t wanted, const std::set<std::int64_t>& used);

/// True when the ENI carries eni-agent's ownership tags for this instance. Only such ENIs are
/// ever detached or deleted.
bool ownedBy(const NetworkInterface& eni, const std::string& instanceId);
/// aws-multi-eni-controller's ENI for this node (NodeENI and Node tags, no eni-agent tags yet).
bool adoptable(const NetworkInterface& eni, const std::string& nodeName);
std::string tagValue(const NetworkInterface& eni, const std::string& key);

}  // namespace eni
