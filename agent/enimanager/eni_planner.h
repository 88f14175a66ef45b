#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/kube/objects.h"
#include "agent/state/node_state.h"
#include "ec2/aws_types.h"
#include "ec2/imds.h"

namespace eni {

inline constexpr const char* kManagedByTag = "eni-agent.io/managed-by";
inline constexpr const char* kInstanceIdTag = "eni-agent.io/instance-id";
inline constexpr const char* kNoManageTag = "node.k8s.amazonaws.com/no_manage";
inline constexpr const char* kNodeEniFinalizer = "nodeeni.networking.k8s.aws/finalizer";
/// The highest device index a NodeENI may ask for (base + one per subnet), as the CRD's maximum:
/// a device index counts a network card's interfaces, and no instance type takes more than a few
/// dozen in all, so every index EC2 accepts is far below it.
inline constexpr std::int64_t kMaxDeviceIndex = 127;
/// EC2 takes at most 16 security groups per ENI (the quota's ceiling).
inline constexpr std::size_t kMaxSecurityGroups = 16;

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
/// index below 1 or one per subnet past kMaxDeviceIndex, more than kMaxSecurityGroups groups or an
/// MTU outside 68-9001 is a problem for that NodeENI, which then gets nothing new (its existing
/// ENIs are left alone). NodeENIs being deleted want nothing. Pure.
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

inline constexpr const char* kLegacyManagedByTag = "kubernetes.io/cluster/managed-by";
inline constexpr const char* kLegacyManagedByValue = "nodeeni-controller";
inline constexpr const char* kVpcCniInstanceTag = "node.k8s.amazonaws.com/instance_id";
inline constexpr const char* kVpcCniDescriptionPrefix = "aws-K8S-";

/// True when the ENI carries eni-agent's ownership tags for this instance. Necessary, never
/// sufficient, for a detach or delete: anyone allowed CreateTags can set them (releasable()).
bool ownedBy(const NetworkInterface& eni, const std::string& instanceId);
/// aws-multi-eni-controller's ENI for this node: its NodeENI and Node tags and the
/// kubernetes.io/cluster/managed-by=nodeeni-controller tag it sets at creation, no eni-agent tags
/// yet, and nothing that makes it someone else's (whyNeverManaged()).
bool adoptable(const NetworkInterface& eni, const std::string& nodeName);
std::string tagValue(const NetworkInterface& eni, const std::string& key);

/// Why this ENI can never be one eni-agent created or adopted, whatever its tags say: attached at
/// device index 0 (an instance's primary), secondary private IPs or IPv4 prefixes (pod addresses),
/// interface type trunk or branch, or VPC CNI's markers (its node.k8s.amazonaws.com/instance_id
/// tag, a description starting "aws-K8S-"). Empty when none applies. Such an ENI is never
/// released, adopted or attached. Pure.
std::string whyNeverManaged(const NetworkInterface& eni);

/// The fingerprint of a NodeENI's spec: 16 hex characters of SHA-256 over its compact JSON (keys
/// sorted). Any change of the spec changes it.
std::string specHashFor(const Json::Value& spec);
/// How many ENIs a valid spec asks for: one per subnet it names, by ID or by Name tag.
std::size_t subnetCount(const NodeEniSpec& spec);

/// What the agent knows about its NodeENI ENIs without asking EC2: the attachments the last pass
/// left (or, before the first pass, the node state's), and the ENIs attached to this instance
/// that are known to be someone else's.
struct RecordedAttachments {
  std::string instanceId;  // the instance the records were made on; empty when unknown
  std::vector<AttachmentRecord> attachments;
  std::set<std::string> otherEnis;  // attached, and without eni-agent's tags when EC2 last looked
};

/// Whether the ENI manager may detach and delete an ENI, and why (or why not).
struct ReleaseDecision {
  bool release = false;
  std::string reason;
};

/// The ENI manager's (and host mode's) release rule, for an ENI that no desired (NodeENI, subnet)
/// wants, as a Describe of this pass shows it. Every one of these must hold:
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

struct ConfirmedAttachment {
  AttachmentRecord record;  // state "attached", no interface name
  std::string subnetId;     // as IMDS shows it
};

/// The records, confirmed, or the first reason they cannot be.
struct Confirmation {
  std::vector<ConfirmedAttachment> attached;
  std::string disagreement;  // empty when every record is confirmed
};

/// Confirms the recorded attachments against IMDS's view of this instance's interfaces, so that a
/// pass (a warm restart above all) needs no EC2 read when nothing changed. Everything must agree:
/// the records are for this instance; every NodeENI that selects this node is recorded as fully
/// satisfied under its current spec (specHash) with one ENI per subnet; every record belongs to
/// such a NodeENI (nothing to clean up: no NodeENI being deleted that matches the node or has
/// entries of this node, none that stopped selecting it); this node's status entries name only
/// recorded ENIs; IMDS shows every recorded ENI with its MAC at its device index; and IMDS shows
/// no attached ENI that is neither the primary, recorded, nor known to be someone else's; and
/// IMDS skipped no interface on this read (a stale key). Anything else is a disagreement: the
/// caller reads EC2. Pure.
Confirmation confirmFromRecords(const std::string& nodeName,
                                const std::map<std::string, std::string>& nodeLabels,
                                const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                                const std::map<std::string, std::string>& specHashes,
                                const RecordedAttachments& recorded, const InterfaceMap& imds);

}  // namespace eni
