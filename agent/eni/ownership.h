#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "agent/state/node_state.h"
#include "ec2/aws_types.h"

namespace eni {

inline constexpr const char* kManagedByTag = "eni-agent.io/managed-by";
inline constexpr const char* kInstanceIdTag = "eni-agent.io/instance-id";
inline constexpr const char* kNoManageTag = "node.k8s.amazonaws.com/no_manage";
inline constexpr const char* kLegacyManagedByTag = "kubernetes.io/cluster/managed-by";
inline constexpr const char* kLegacyManagedByValue = "nodeeni-controller";
inline constexpr const char* kVpcCniInstanceTag = "node.k8s.amazonaws.com/instance_id";
inline constexpr const char* kVpcCniDescriptionPrefix = "aws-K8S-";

/// The tags an ENI eni-agent creates carries; ownership is read from them. `owner` is the NodeENI
/// name (Kubernetes mode) or the host interface key "host-<index>" (host mode); `nodeName` is the
/// Node (Kubernetes mode) or the instance ID (host mode).
std::vector<Tag> ownershipTags(const std::string& owner, const std::string& nodeName,
                               const std::string& subnetId, const std::string& instanceId);
/// The tags an ENI made for a NodeENI carries at creation: ownershipTags() and
/// kubernetes.io/cluster/managed-by=nodeeni-controller, aws-multi-eni-controller's creation tag, so
/// that filters people built on it keep finding NodeENI ENIs. That tag says which tool's kind of
/// ENI it is, never whose: ownership is read from eni-agent's tags alone (ownedBy, releasable),
/// and an ENI with eni-agent's tags is never adoptable.
std::vector<Tag> nodeEniCreationTags(const std::string& nodeEni, const std::string& nodeName,
                                     const std::string& subnetId, const std::string& instanceId);
/// The idempotency token for (owner, node, subnet, device index): 32 hex characters.
std::string clientTokenFor(const std::string& owner, const std::string& nodeName,
                           const std::string& subnetId, std::int64_t deviceIndex);

/// The lowest free device index at or above `wanted`.
std::int64_t freeDeviceIndex(std::int64_t wanted, const std::set<std::int64_t>& used);

std::string tagValue(const NetworkInterface& eni, const std::string& key);

/// True when the ENI carries eni-agent's ownership tags for this instance. Necessary, never
/// sufficient, for a detach or delete: anyone allowed CreateTags can set them (releasable()).
bool ownedBy(const NetworkInterface& eni, const std::string& instanceId);
/// aws-multi-eni-controller's ENI for this node: its NodeENI and Node tags and the
/// kubernetes.io/cluster/managed-by=nodeeni-controller tag it sets at creation, no eni-agent tags
/// yet, and nothing that makes it someone else's (whyNeverManaged()).
bool adoptable(const NetworkInterface& eni, const std::string& nodeName);

/// Why this ENI can never be one eni-agent created or adopted, whatever its tags say: attached at
/// device index 0 (an instance's primary), secondary private IPs or IPv4 prefixes (pod addresses),
/// interface type trunk or branch, or VPC CNI's markers (its node.k8s.amazonaws.com/instance_id
/// tag, a description starting "aws-K8S-"). Empty when none applies. Such an ENI is never
/// released, adopted or attached. Pure.
std::string whyNeverManaged(const NetworkInterface& eni);

/// What the agent knows about the ENIs it made without asking EC2: its attachment records (the
/// node state's, or the last pass's) and the ENIs attached to this instance that are known to be
/// someone else's.
struct RecordedAttachments {
  std::string instanceId;  // the instance the records were made on; empty when unknown
  std::vector<AttachmentRecord> attachments;
  std::set<std::string> otherEnis;  // attached, and without eni-agent's tags when EC2 last looked
};

/// Whether the agent may detach and delete an ENI, and why (or why not).
struct ReleaseDecision {
  bool release = false;
  std::string reason;
};

/// The release rule of both modes, for an ENI that nothing desired wants, as a Describe shows it.
/// Every one of these must hold:
/// - whyNeverManaged() is empty;
/// - it carries eni-agent's ownership tags for `instanceId` (ownedBy);
/// - it is attached to `instanceId` or to nothing (never another instance's ENI);
/// - the agent's own records say it is its own: `records` are this instance's and list its ID,
///   or `creating` (the write-ahead) holds its NodeENI tag: a kill between
///   CreateNetworkInterface and the record. Records of another instance count for nothing;
///   records that name no instance count only for an ENI attached to this instance.
/// Tags are writable by anyone allowed CreateTags, so they alone never suffice. Pure.
ReleaseDecision releasable(const NetworkInterface& eni, const RecordedAttachments& records,
                           const std::string& instanceId, const std::set<std::string>& creating);

}  // namespace eni
