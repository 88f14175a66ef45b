#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/eni_actions.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/enimanager/eni_planner.h"
#include "agent/kube/objects.h"
#include "ec2/aws_types.h"
#include "ec2/imds.h"

namespace eni {

/// What the loop thread hands one ENI manager pass.
struct ManagerPassInput {
  std::string nodeName;
  std::map<std::string, std::string> labels;
  std::vector<NodeEni> nodeEnis;
  std::map<std::string, std::string> specHashes;  // NodeENI -> specHashFor(its spec)
  std::string instanceId;                         // empty until IMDS told
  RecordedAttachments recorded;
  bool nothingHere = false;  // no NodeENI selects this node and it owns no ENI: no EC2 call
  bool mayConfirm = false;   // the records may stand in for EC2 if IMDS agrees with them
  // Started by the periodic drift check alone (no event since the last pass): only a difference
  // between IMDS and the records calls for more, so that NodeENIs with a problem (which always
  // read EC2) are not read from EC2 again at every check.
  bool driftCheck = false;
  bool writeAhead = true;  // creates wait for their NodeENI in createStored
  bool dpdk = false;       // ENIs of NodeENIs with enableDPDK can be bound (else refused)
  bool dryRun = false;
  std::set<std::string> createStored;  // the write-ahead as stored
};

enum class ObservationKind {
  Failed,       // identity, DescribeInstances or the list failed: retried
  NothingHere,  // nothing to read (ManagerPassInput::nothingHere)
  Confirmed,    // the records and IMDS agree: no EC2 read
  NoDrift,      // a periodic check: IMDS shows the recorded ENIs as recorded; nothing to change
  Ec2,          // read from EC2
};

/// What observe() read: IMDS, and EC2 unless the records were confirmed.
struct ManagerObservation {
  ObservationKind kind = ObservationKind::Failed;
  std::string instanceId;
  std::string error;                             // Failed: what failed
  std::vector<ConfirmedAttachment> confirmed;    // Confirmed
  std::optional<InterfaceMap> imds;              // this instance's interfaces, when IMDS answered
  Instance instance;                             // Ec2: VPC and attached ENIs
  std::map<std::string, std::string> subnetIds;  // Name tag -> subnet ID
  std::map<std::string, std::string> groupIds;   // group name -> group ID
  std::map<std::string, std::string> groupVpcs;  // group ID -> VPC ID
  std::optional<std::vector<NetworkInterface>> mine;  // findOwned(byNode)
  std::string mineError;
};

/// One NodeENI attachment this node has, for the records, the links and the status.
struct Attached {
  AttachmentRecord record;
  std::string mac;
  std::string subnetId;
  std::int64_t mtu = 0;
};

/// The decision of one pass.
struct ManagerPlan {
  ObservationKind kind = ObservationKind::Failed;
  std::string instanceId;
  bool retry = false;
  std::vector<Attached> confirmed;  // Confirmed: the records, as IMDS confirms them
  EniActions actions;               // Ec2
  std::vector<NodeEniProblem> problems;
  std::set<std::string> unsettled;     // NodeENIs this pass cannot fully satisfy
  std::set<std::string> attachedHere;  // Ec2: ENIs DescribeInstances shows attached here
  bool dryRun = false;                 // log the actions, run none
};

/// Decides one pass from what was observed. Pure.
/// - Failed: retry. NothingHere: nothing. Confirmed: the records stand, nothing to send.
/// - Ec2: the desired ENIs (desiredEnis()) and their problems, a security group of another VPC
///   as a problem of its NodeENI, and planEniActions() over this node's ENIs (by the Node tag) with
///   the records and the write-ahead; every NodeENI with a problem keeps what it has.
ManagerPlan planManagerPass(const ManagerPassInput& in, const ManagerObservation& observed,
                            const DeleteOnTerminationMemo& memo);

/// What one pass leaves: the new records, what stays recorded, and what to report.
struct ManagerRecord {
  bool complete = false;   // the pass got to the end: its attachments are the new records
  bool confirmed = false;  // ... confirmed from the records and IMDS, without EC2
  bool retry = false;
  std::string instanceId;
  std::vector<Attached> attached;
  std::vector<AttachmentRecord> held;  // unwanted ENIs that stay recorded: kept or not released
  std::vector<NodeEniProblem> problems;
  std::set<std::string> foreign;
  std::vector<std::string> needWriteAhead;  // creates held back for their write-ahead
};

/// Turns the plan and what apply got into the pass's record: attachments (with the spec hash of
/// each fully satisfied NodeENI), problems for failed adopts, creates and attaches, records that
/// stay for kept ENIs ("kept") and releases that did not finish ("releasing"), and the ENIs
/// attached here that are not eni-agent's (`foreign`: the primary, VPC CNI's), from EC2's view
/// and from `imds` (what the next check compares against), read once the pass applied. Pure.
ManagerRecord recordManagerPass(const ManagerPassInput& in, const ManagerPlan& plan,
                                const std::vector<EnsureResult>& ensured,
                                const std::vector<ReleaseResult>& released,
                                const std::optional<InterfaceMap>& imds);

}  // namespace eni
