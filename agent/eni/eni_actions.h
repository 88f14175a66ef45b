#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/eni/ownership.h"
#include "ec2/aws_types.h"

namespace eni {

/// One ENI a mode wants on this instance: an (owner, subnet) pair and how to make and attach it.
/// The owner is a NodeENI's name (Kubernetes mode) or a host interface key, "host-<index>".
struct DesiredEni {
  std::string nodeEni;  // the owner; the ENI's NodeENI tag
  std::string subnetId;
  std::vector<std::string> securityGroupIds;
  std::int64_t deviceIndex = 1;  // wanted; moved past used indexes when attaching
  bool deleteOnTermination = true;
  std::int64_t mtu = 0;
  std::string description;
  std::string clientToken;
  std::vector<Tag> tags;  // ownershipTags(): what a create carries
};

/// Who the lifecycle acts for.
struct Ownership {
  std::string instanceId;
  std::string nodeName;  // the Node (Kubernetes mode); the instance ID (host mode)
};

/// Which DeleteOnTermination value each attachment is known to have, by attachment ID, so that no
/// pass sends the same ModifyNetworkInterfaceAttribute again: Describe is eventually consistent
/// (and moto never shows the value). One memo per reconciler, owned by the structure its worker
/// thread owns; both modes key it by attachment ID.
class DeleteOnTerminationMemo {
 public:
  /// Whether the attachment is known to hold `value`: `shown` by a Describe of this pass, or
  /// set (or assumed) by this process.
  bool settled(const std::string& attachmentId, bool value, std::optional<bool> shown) const;
  bool known(const std::string& attachmentId) const { return values_.count(attachmentId) != 0; }
  /// After a ModifyNetworkInterfaceAttribute that succeeded, or for a record that says so.
  void set(const std::string& attachmentId, bool value) { values_[attachmentId] = value; }
  /// A recorded attachment this process never touched holds what the records were made with.
  void assume(const std::string& attachmentId, bool value) { values_.emplace(attachmentId, value); }
  void forget(const std::string& attachmentId) { values_.erase(attachmentId); }

 private:
  std::map<std::string, bool> values_;
};

/// The action kinds of a plan, for logs and table tests.
enum class EniActionKind {
  Keep,                    // attached here already: nothing to send
  Adopt,                   // add eni-agent's ownership tags (aws-multi-eni-controller's ENI)
  Create,                  // CreateNetworkInterface with the ClientToken and ownership tags
  AwaitWriteAhead,         // a create, held back until the write-ahead names its owner
  Attach,                  // AttachNetworkInterface at a free device index
  SetDeleteOnTermination,  // ModifyNetworkInterfaceAttribute
  Release,                 // detach, wait until available, delete
  Hold,                    // unwanted, releasable, and kept: its owner has a problem
  Refuse,                  // carries eni-agent's tags, and the rules say it is not its to touch
  Problem,                 // a desired ENI that cannot be worked on this pass
};
std::string_view toString(EniActionKind kind);

/// What to do for one desired ENI, in order: adopt or create, attach, DeleteOnTermination.
struct EnsureStep {
  DesiredEni desired;
  NetworkInterface eni;   // the ENI found by its tags or recorded; empty when one is created
  bool recorded = false;  // the records name `eni` already
  bool adopt = false;
  bool create = false;
  std::optional<std::int64_t> attachAt;
  bool setDeleteOnTermination = false;
  bool assumeDeleteOnTermination = false;  // a recorded attachment: its value is the desired one
  std::vector<EniActionKind> kinds() const;
};

/// An unwanted ENI to release, as the pass saw it (only its ID when it was not listed: a record).
struct ReleaseStep {
  NetworkInterface eni;
  std::string owner;       // its NodeENI tag or record
  bool described = false;  // `eni` is what a Describe of this pass showed
};

/// An unwanted ENI kept, or one refused, and why.
struct EniNote {
  NetworkInterface eni;
  std::string owner;
  std::string reason;
  bool neverManaged = false;  // Refuse: whyNeverManaged() named it (never adopted or attached)
};

struct EniProblem {
  std::string owner;
  std::string message;
  bool retry = false;
};

/// What a pass observed that the lifecycle plan needs. Filled by a mode's observe.
struct LifecycleObservation {
  Ownership owner;
  /// Host mode: only ENIs whose NodeENI tag starts with it are this mode's ("host-").
  std::string ownerPrefix;
  /// findOwned's answer, when this pass read it; else why it could not (empty: not needed).
  std::optional<std::vector<NetworkInterface>> listed;
  std::string listError;
  /// Owner -> its recorded ENI that IMDS shows attached here in the desired subnet: kept
  /// without an EC2 read (host mode's warm path). The ENI carries its attachment.
  std::map<std::string, NetworkInterface> live;
  std::set<std::int64_t> usedIndexes;  // device indexes taken on this instance
  RecordedAttachments records;         // what licenses a release
  std::set<std::string> createStored;  // the write-ahead as stored: creates allowed
  bool writeAheadRequired = true;
  /// Owners with a problem this pass (config, lookups): nothing new, their ENIs are kept.
  std::set<std::string> problemOwners;
};

/// The plan of one pass for the ENIs, in the order apply runs it.
struct EniActions {
  std::vector<EnsureStep> ensure;
  std::vector<std::string> awaitWriteAhead;  // owners whose create waits for the write-ahead
  std::vector<ReleaseStep> release;
  std::vector<EniNote> held;
  std::vector<EniNote> refused;
  std::vector<EniProblem> problems;
  std::set<std::string> wanted;  // ENI IDs a desired ENI uses
};

/// Decides, for both modes, what to do with the desired ENIs and with the ENIs nothing wants.
/// - A desired ENI whose owner has a problem gets nothing. One in `live` is kept (its
///   DeleteOnTermination assumed, or set when this process set another value). Else it needs
///   `listed` (a problem, retried, when missing): the first listed ENI with its NodeENI and
///   SubnetID tags that is eni-agent's for this instance (ownedBy) or adoptable, not used for
///   another, not one whyNeverManaged() names (refused), and attached here or nowhere. None:
///   created, once the write-ahead names its owner (AwaitWriteAhead before). An ENI not attached
///   here is attached at the lowest free index from the desired one. DeleteOnTermination is set
///   after an attach, and on an attachment whose value neither EC2 shows nor `memo` knows.
/// - Nothing else is released that releasable() refuses (refused, to be warned about once), that
///   lacks eni-agent's tags (ignored), or whose owner has a problem (held). When the pass listed
///   ENIs the candidates are those listed; else the records' ENIs (release() verifies each).
/// Pure.
EniActions planEniActions(const std::vector<DesiredEni>& desired, const LifecycleObservation& obs,
                          const DeleteOnTerminationMemo& memo);

/// After the ensure steps ran: an owner that failed keeps its unwanted ENIs this pass (a NodeENI
/// that could not get its new ENI keeps the old one). Moves their releases to `held`. Pure.
void holdReleasesOf(const std::set<std::string>& failedOwners, EniActions& actions);

}  // namespace eni
