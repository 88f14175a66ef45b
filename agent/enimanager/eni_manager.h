#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/executor.h"
#include "agent/eni/link_reconciler.h"
#include "agent/enimanager/eni_planner.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/objects.h"
#include "agent/kube/reflector.h"
#include "agent/state/node_state.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

struct EniManagerOptions {
  std::string nodeName;
  bool dryRun = false;  // compute and log every write, send none
  Duration debounce{100};
  Duration retryDelay{5000};
  /// Test hook for the crash-safety tests: "created", "attached" or "before-status" makes the
  /// agent SIGKILL itself right there. Empty in production (ENI_AGENT_CRASH_POINT sets it).
  std::string crashPoint;
  /// Called with this node's attachments, the attached ENIs EC2 showed to be unowned (sorted) and
  /// the NodeENIs whose ENIs may still be being created (NodeState::creating), after every pass;
  /// the node-state annotation records all three.
  std::function<void(const std::vector<AttachmentRecord>&, const std::vector<std::string>&,
                     const std::vector<std::string>&)>
      onAttachments;
  /// The write-ahead before CreateNetworkInterface: records the NodeENIs about to get an ENI
  /// (NodeState::creating) and answers whether that is stored. A pass creates an ENI only for a
  /// NodeENI so recorded, so a kill right after a create never leaves an ENI that a restart,
  /// trusting its records, would not look for. Unset: no write-ahead (unit tests of other
  /// behaviour).
  std::function<void(std::vector<std::string> creating, std::function<void(bool stored)> done)>
      recordCreating;
  int detachPolls = 30;  // waiting for "available" after a detach, one poll a second
  Duration detachPollInterval{1000};
};

/// Gives this node the ENIs that NodeENIs ask for. NodeENI and Node events mark it dirty. A pass
/// first checks the recorded attachments (the last pass's, or the node-state annotation's after a
/// restart) against IMDS (confirmFromRecords): when they agree, nothing needs doing and EC2 is not
/// read. Otherwise it reads the instance and its ENIs (filtered Describes), creates what is
/// missing (found by ownership tags first, so a crash never duplicates; ClientToken too), attaches
/// at a free device index, sets DeleteOnTermination, and detaches and deletes the ENIs nobody
/// wants any more that releasable() allows: its own by its records (or the write-ahead), never
/// by tags alone. ENIs whyNeverManaged() names are never adopted, attached or released. A pass
/// that leaves something to retry makes the next one read EC2.
/// The loop thread then hands MACs and MTUs to the LinkReconciler, writes this node's NodeENI
/// status entries by server-side apply (field manager eni-agent/<node>) and keeps the finalizer.
/// Loop thread only, but for the executor's work.
class EniManager {
 public:
  EniManager(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
             Sleeper& sleeper, LinkReconciler* links, EniManagerOptions options);
  ~EniManager();

  /// The first Node event also loads the node-state annotation's attachments (the records a warm
  /// start confirms against IMDS).
  void onNode(ChangeType type, const Json::Value& object);
  void onNodeEni(ChangeType type, const Json::Value& object);
  void start();

  const std::vector<AttachmentRecord>& attachments() const { return attachments_; }
  bool idle() const { return !passRunning_ && !passScheduled_ && !dirty_ && kubeInFlight_ == 0; }
  std::uint64_t passes() const { return passes_; }
  /// Passes that confirmed the records against IMDS and read nothing from EC2.
  std::uint64_t confirmedPasses() const { return confirmedPasses_; }
  /// CreateNetworkInterface calls held back until their write-ahead was stored.
  std::uint64_t writeAheads() const { return writeAheads_; }

 private:
  struct PassInput;
  struct PassOutput;
  void markDirty();
  /// Arms the one pass timer: a pass runs after `delay`.
  void schedulePass(Duration delay);
  void runPass();
  void work(PassInput& in, PassOutput& out);
  bool confirmRecords(const PassInput& in, PassOutput& out, std::optional<InterfaceMap>& imdsView);
  /// Detaches and deletes the unwanted ENIs `decisions` allow (releasable), never another.
  void releaseUnwanted(const std::vector<NetworkInterface>& mine,
                       const std::map<std::string, ReleaseDecision>& decisions, PassOutput& out);
  /// Detach, wait until available, delete; false when that did not finish (retried).
  bool releaseEni(const NetworkInterface& eni);
  /// Whether an ENI found by its tags may be adopted or attached for a desired one.
  bool usable(const NetworkInterface& eni, const std::string& me);
  void warnOnce(const std::string& eniId, const char* message, const std::string& reason);
  void finish(PassOutput& out);
  void writeStatus(const PassOutput& out);
  void keepFinalizers(const PassOutput& out);
  void pruneDeadNodes();
  void reportProblems(const PassOutput& out);
  void crashPoint(const char* where) const;
  void publishAttachments();

  KubeApi& kube_;
  Ec2Api& ec2_;
  Imds& imds_;
  Scheduler& scheduler_;
  Executor& executor_;
  Sleeper& sleeper_;
  LinkReconciler* links_;
  EniManagerOptions options_;

  std::map<std::string, std::string> nodeLabels_;
  std::map<std::string, Json::Value> nodeEnis_;  // by name, as the API server last showed them
  std::string instanceId_;
  std::vector<AttachmentRecord> attachments_;
  // What the last complete pass left, or the node state's record before one has run.
  RecordedAttachments recorded_;
  bool stateLoaded_ = false;
  bool readEc2Next_ = false;              // the last pass left something to retry
  std::set<std::string> creating_;        // NodeState::creating: recorded, or being recorded
  std::set<std::string> createRecorded_;  // ... of which the node state holds these
  bool recordInFlight_ = false;
  std::map<std::string, std::string> macOf_;             // ENI ID -> MAC
  std::map<std::string, std::string> appliedStatus_;     // NodeENI -> the entries we last applied
  std::map<std::string, std::string> reportedProblems_;  // NodeENI -> the problem last reported
  std::set<std::string> pruning_;                        // "nodeeni/node" checks in flight
  // Worker thread only: names and groups resolved once.
  std::map<std::string, std::string> subnetNameCache_;  // Name tag -> subnet ID
  std::map<std::string, std::string> groupNameCache_;   // group name -> group ID
  std::map<std::string, std::string> groupVpcCache_;    // group ID -> VPC ID
  // Attachment ID -> the DeleteOnTermination this process set on it (worker thread only).
  // Describe is eventually consistent (and moto never shows it), so without this every pass
  // would send the same ModifyNetworkInterfaceAttribute again.
  std::map<std::string, bool> deleteOnTerminationSet_;
  std::set<std::string> refusedEnis_;  // ENIs refused and warned about once (worker thread only)
  // Records published besides attachments_: ENIs whose release has not finished, or after a
  // pass that stopped early, every record it left unchanged.
  std::vector<AttachmentRecord> heldRecords_;
  bool started_ = false;
  bool passRunning_ = false;
  bool passScheduled_ = false;
  bool dirty_ = false;
  TimerId timer_ = 0;
  int kubeInFlight_ = 0;
  std::uint64_t passes_ = 0;
  std::uint64_t confirmedPasses_ = 0;
  std::uint64_t writeAheads_ = 0;
};

}  // namespace eni
