#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/eni_actions.h"
#include "agent/eni/ownership.h"
#include "agent/kube/objects.h"
#include "agent/state/node_state.h"
#include "ec2/aws_types.h"
#include "ec2/imds.h"

namespace eni {

inline constexpr const char* kNodeEniFinalizer = "nodeeni.networking.k8s.aws/finalizer";
/// The highest device index a NodeENI may ask for (base + one per subnet), as the CRD's maximum:
/// a device index counts a network card's interfaces, and no instance type takes more than a few
/// dozen in all, so every index EC2 accepts is far below it.
inline constexpr std::int64_t kMaxDeviceIndex = 127;
/// EC2 takes at most 16 security groups per ENI (the quota's ceiling).
inline constexpr std::size_t kMaxSecurityGroups = 16;

/// The event reasons of a NodeENI's problems on a node.
inline constexpr const char* kNodeEniInvalidReason = "NodeENIInvalid";
inline constexpr const char* kDpdkNotSupportedReason = "DPDKNotSupported";
inline constexpr const char* kDpdkBindFailedReason = "DPDKBindFailed";

struct NodeEniProblem {
  std::string nodeEni;
  std::string message;
  std::string reason = kNodeEniInvalidReason;  // the Warning event's reason
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
/// ENIs are left alone). So are DPDK fields of the wrong form (dpdkSpecProblem()), and enableDPDK
/// when `dpdkSupported` is false (reason kDpdkNotSupportedReason): an ENI left to the kernel is
/// not what such a NodeENI asks for. NodeENIs being deleted want nothing. Pure.
DesiredEnis desiredEnis(const std::string& nodeName,
                        const std::map<std::string, std::string>& nodeLabels,
                        const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                        const std::map<std::string, std::string>& subnetIdsByName,
                        const std::map<std::string, std::string>& groupIdsByName,
                        bool dpdkSupported = false);

/// When aws-multi-eni-controller's DEFAULT_DELETE_ON_TERMINATION (`legacyDefault`) is set and
/// differs from the NodeENI's spec.deleteOnTermination: the line that says the spec wins (that tool
/// let the variable override it). Empty otherwise. Pure.
std::string deleteOnTerminationNote(const NodeEni& nodeEni, std::optional<bool> legacyDefault);

/// The fingerprint of a NodeENI's spec: 16 hex characters of SHA-256 over its compact JSON (keys
/// sorted). Any change of the spec changes it.
std::string specHashFor(const Json::Value& spec);
/// The same fingerprint from a decoded NodeENI (its specJson is toJson of the served spec).
std::string specHashFor(const NodeEni& nodeEni);
/// How many ENIs a valid spec asks for: one per subnet it names, by ID or by Name tag.
std::size_t subnetCount(const NodeEniSpec& spec);

struct ConfirmedAttachment {
  AttachmentRecord record;  // state "attached", no interface name
  std::string subnetId;     // as IMDS shows it
};

/// The records, confirmed, or the first reason they cannot be.
struct Confirmation {
  std::vector<ConfirmedAttachment> attached;
  std::string disagreement;  // empty when every record is confirmed
};

/// The drift check's question: why IMDS does not show the recorded ENIs as recorded (one missing,
/// moved, or an unknown one attached), or "" when it does. Only IMDS's side of
/// confirmFromRecords. Pure.
std::string driftFromImds(const RecordedAttachments& recorded, const InterfaceMap& imds);

/// Every check of confirmFromRecords that needs no IMDS: why the records cannot stand for EC2
/// whatever IMDS shows (a NodeENI changed, deleted or gone, another instance's records...), or ""
/// when only IMDS can tell. Pure.
std::string recordsDisagree(const std::string& nodeName,
                            const std::map<std::string, std::string>& nodeLabels,
                            const std::string& instanceId, const std::vector<NodeEni>& nodeEnis,
                            const std::map<std::string, std::string>& specHashes,
                            const RecordedAttachments& recorded);

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
