#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/executor.h"
#include "agent/base/pass_runner.h"
#include "agent/base/timer.h"
#include "agent/dpdk/dpdk_devices.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/eni/write_ahead.h"
#include "agent/enimanager/eni_manager_pass.h"
#include "agent/enimanager/eni_planner.h"
#include "agent/enimanager/manager_worker.h"
#include "agent/enimanager/nodeeni_bookkeeping.h"
#include "agent/enimanager/nodeeni_deletion.h"
#include "agent/kube/event_recorder.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "agent/kube/nodeeni_status_writer.h"
#include "agent/kube/objects.h"
#include "agent/kube/reflector.h"
#include "agent/state/node_state.h"
#include "agent/state/node_state_store.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

struct EniManagerOptions {
  std::string nodeName;
  bool dryRun = false;  // compute and log every write, send none
  Duration debounce{100};
  Duration retryDelay{5000};
  /// How often a pass runs with no event to start it, so that an ENI detached or deleted behind
  /// the agent's back is attached or created again (the drift check). The pass compares the
  /// records with IMDS and reads EC2 only when they disagree. +-20% jitter; the first falls
  /// anywhere in 0.5-1.5x. Zero: no periodic pass.
  Duration checkInterval = std::chrono::minutes(5);
  /// Test hook for the crash-safety tests: "before-status" makes the agent SIGKILL itself right
  /// before it writes the NodeENI status ("created" and "attached" are EniLifecycle's). Empty in
  /// production (ENI_AGENT_CRASH_POINT sets it).
  std::string crashPoint;
  /// The write-ahead before CreateNetworkInterface (NodeStateStore::writeAhead): a pass creates an
  /// ENI only for a NodeENI the node state names in `creating`, so a kill right after a create
  /// never leaves an ENI that a restart, trusting its records, would not look for. Off only in
  /// unit tests of other behaviour.
  bool writeAhead = true;
  /// A NodeENI being deleted whose cleanup has not completed this long after it started
  /// (cleanupStart()) loses its finalizer: this agent, in its turn (cleanupTurn()), removes it
  /// with a CleanupTimeout Warning event naming the nodes left behind and their ENIs. Zero: never.
  Duration maxCleanupDuration = std::chrono::minutes(30);
  /// aws-multi-eni-controller's DEFAULT_DELETE_ON_TERMINATION, when set: never obeyed (the spec
  /// wins), but each NodeENI whose spec disagrees is logged once (deleteOnTerminationNote()).
  std::optional<bool> legacyDefaultDeleteOnTermination;
};

/// Gives this node the ENIs that NodeENIs ask for. NodeENI and Node events mark it dirty; one
/// PassRunner runs the passes, each observe -> plan -> apply -> record:
/// - observe (AWS worker, ManagerWorker): the recorded attachments (the last pass's, or the node
///   state's after a restart) checked against IMDS (confirmFromRecords): when they agree, EC2 is
///   not read. Otherwise the instance and this node's ENIs (filtered Describes).
/// - plan (pure, planManagerPass): the desired ENIs and the lifecycle actions: find by ownership
///   tags (so a crash never duplicates), adopt aws-multi-eni-controller's, create (ClientToken, and
///   only once the write-ahead is stored), attach at a free device index, DeleteOnTermination;
///   release only what releasable() allows: its own by its records (or the write-ahead), never by
///   tags alone. ENIs whyNeverManaged() names are never adopted, attached or released.
/// - apply: the ensure steps on the AWS worker, then the releases through EniLifecycle::release
///   (concurrently, on its own executor: the AWS worker and tagging never wait for a detach).
/// - record (pure, recordManagerPass): the new records; the loop thread then stores its slice of
///   the node state, keeps the attached ENIs' links managed by the LinkReconciler (each MAC was
///   handed over mid-pass, as soon as the worker knew it; the others are dropped now), and keeps
///   the books (planBookkeeping): this node's NodeENIAttachment object per NodeENI (never another
///   node's, never a watch of them), the finalizer (asked for once, by a node with ENIs), and the
///   deletion protocol (the finalizer goes when no node's object is left).
/// A pass that leaves something to retry makes the next one read EC2. Besides events, a pass runs
/// every `checkInterval` and when an attached ENI's link disappears (the drift check): IMDS then
/// shows an ENI detached or deleted behind the agent's back, and the pass reads EC2 and repairs it.
/// Loop thread only, but for the worker's part.
class EniManager {
 public:
  EniManager(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler, const Clock& clock,
             Executor& executor, EniLifecycle& lifecycle, NodeStateStore& store,
             LinkReconciler* links, EniManagerOptions options, const DpdkDevices* dpdk = nullptr,
             Executor* dpdkExecutor = nullptr);
  ~EniManager();
  EniManager(const EniManager&) = delete;
  EniManager& operator=(const EniManager&) = delete;

  void onNode(ChangeType type, const Json::Value& object);
  void onNodeEni(ChangeType type, const Json::Value& object);
  /// Passes may run from now on. The first one takes the ENI manager's records from the store
  /// (NodeStateStore::current(): attachments, unownedEnis, creating).
  void start();

  const std::vector<AttachmentRecord>& attachments() const { return attachments_; }
  bool idle() const {
    return runner_.idle() && records_.inFlight() == 0 && status_.inFlight() == 0 &&
           checking_.empty() && events_.inFlight() == 0 && forcing_.empty() && binding_.empty();
  }
  /// This node's NodeENIAttachment writes (applies and deletes) so far.
  std::uint64_t recordWrites() const { return records_.writes(); }
  std::uint64_t passes() const { return runner_.passes(); }
  /// Passes that confirmed the records against IMDS and read nothing from EC2.
  std::uint64_t confirmedPasses() const { return confirmedPasses_; }
  /// Drift checks that found IMDS showing the recorded ENIs as recorded, and changed nothing.
  std::uint64_t noDriftChecks() const { return noDriftChecks_; }
  /// CreateNetworkInterface calls held back until their write-ahead was stored.
  std::uint64_t writeAheads() const { return writeAheads_; }
  /// Links handed to the LinkReconciler while their pass ran (before its attach).
  std::uint64_t linksWantedInPass() const { return linksWantedInPass_; }
  /// ENIs whose device is bound to a DPDK driver, by ENI ID.
  const std::map<std::string, DeviceBinding>& boundDevices() const { return bound_; }

 private:
  struct Pass;
  void takeRecords();
  ManagerPassInput snapshot() const;
  bool nothingHere(const std::vector<NodeEni>& nodeEnis,
                   const std::map<std::string, std::string>& labels) const;
  void runPass(PassRunner::Done done);
  /// Hands each ENI's link to the LinkReconciler as soon as the worker knows its MAC; nullptr
  /// without one. Called on the loop thread; what it returns runs on the AWS worker.
  OnLinkWanted linkWanted();
  void release(const std::shared_ptr<Pass>& pass);
  void releaseOne(const std::shared_ptr<Pass>& pass, const ReleaseStep& step,
                  const ReleaseGrounds& grounds);
  // DPDK (eni_manager_dpdk.cpp): the devices of attached ENIs of NodeENIs with enableDPDK are
  // bound once their interface (or dpdkPCIAddress) is known, on the AWS worker; the binding is
  // recorded with the attachment, and given back before the ENI is released.
  void bindDevices();
  void bindDevice(const AttachmentRecord& record, const NodeEniSpec& spec);
  void onBound(const std::string& eniId, const std::string& owner, const Result<PciBinding>& r);
  /// Gives the ENI's device back when it is bound; `then` gets why it could not, or "".
  void giveBackDevice(const std::string& eniId, std::function<void(std::string)> then);
  void recordDevices(ManagerRecord& record);
  std::string linkNameOf(const std::string& eniId) const;
  std::string oldPciAddressOf(const AttachmentRecord& record) const;
  void readInterfaces(const std::shared_ptr<Pass>& pass);
  static bool wantsInterfaces(const Pass& pass);
  void finish(const std::shared_ptr<Pass>& pass);
  void logOutcomes(const Pass& pass);
  void keepRecords(ManagerRecord& record);
  void manageLinks(const std::vector<Attached>& attached);
  void publishAttachments();
  void onLinksChanged();
  /// Every event that asks for a pass: it is then more than a drift check.
  void markDirty() {
    driftCheckOnly_ = false;
    runner_.markDirty();
  }
  void runAfter(Duration delay) {
    driftCheckOnly_ = false;
    runner_.runAfter(delay);
  }
  bool linkNewlyGone();
  void scheduleCheck(bool first);
  /// Stores the write-ahead and ends the pass; the store's answer starts the next one.
  void recordWriteAhead(const PassRunner::Done& done);
  void warnOnce(const std::string& eniId, const char* message, const std::string& reason);
  void loadRecords();
  void keepBooks(const ManagerRecord& record);
  BookkeepingInput bookkeepingInput(const ManagerRecord& record) const;
  void writeRecord(NodeEniAttachmentObject object);
  void removeRecord(const std::string& name);
  void addFinalizer(const std::string& name);
  void markRecorded(const std::string& name);
  void checkRemaining(const std::string& name);
  void onRemaining(const std::string& name, const RemainingAnswer& answer);
  void removeFinalizer(const std::string& name);
  void dropOldEntries(const std::string& name);
  void noteDeleteOnTermination();
  void checkCleanupDeadlines();
  void forceCleanup(const std::string& name);
  void reportCleanupTimeout(const NodeEni& nodeEni, const NodeEniAttachmentWriter::Remaining& left);
  std::optional<NodeEni> typedNodeEni(const std::string& name) const;
  void retryBooks(std::string_view what, const std::string& name, const Error& error);
  void reportProblems(const ManagerRecord& record);
  void crashPoint(const char* where) const;

  KubeApi& kube_;
  const Clock& wallClock_;
  Executor& executor_;
  EniLifecycle& lifecycle_;
  NodeStateStore& store_;
  LinkReconciler* links_;
  EniManagerOptions options_;
  EventRecorder events_;
  ManagerWorker worker_;  // its AWS worker's part: used on that thread only
  PassRunner runner_;
  Timer check_;  // the periodic drift check

  std::map<std::string, std::string> nodeLabels_;
  std::map<std::string, NodeEni> nodeEnis_;  // by name, decoded as the API server last showed them
  std::string instanceId_;
  std::vector<AttachmentRecord> attachments_;
  // What the last complete pass left, or the node state's record before one has run.
  RecordedAttachments recorded_;
  bool recordsTaken_ = false;
  bool readEc2Next_ = false;  // the last pass left something to retry
  CreateWriteAhead writeAhead_;
  std::map<std::string, std::string> macOf_;             // ENI ID -> MAC
  std::map<std::string, std::string> reportedProblems_;  // NodeENI -> the problem last reported
  SystemClock clock_;
  NodeEniAttachmentWriter records_;
  NodeEniStatusWriter status_;
  std::string nodeUid_;
  bool loading_ = false;
  // NodeENI -> the resourceVersion at which this node asked for the finalizer / checked what
  // remains of a deletion: once per version, so a fleet does not repeat them.
  std::map<std::string, std::string> finalizerTriedAt_;
  std::map<std::string, std::string> remainingCheckedAt_;
  std::set<std::string> removedOwn_;  // NodeENIs whose object this node removed in this run
  std::set<std::string> checking_;    // deletion checks in flight
  // Cleanup timeouts: NodeENI -> the resourceVersion this node forced it at (once per version),
  // those in flight, and the timer of the next deadline.
  std::set<std::string> dotNoted_;  // NodeENIs logged as disagreeing with the old tool's default
  std::map<std::string, std::string> forcedAt_;
  std::set<std::string> forcing_;
  Timer cleanupTimer_;
  std::set<std::string> refusedEnis_;  // ENIs refused and warned about once
  std::set<std::string> goneLinks_;    // MACs of attached ENIs whose link the kernel removed
  bool driftCheckOnly_ = false;        // the pending pass was asked for by the drift check alone
  // Records published besides attachments_: ENIs whose release has not finished, or after a
  // pass that stopped early, every record it left unchanged.
  std::vector<AttachmentRecord> heldRecords_;
  std::uint64_t confirmedPasses_ = 0;
  std::uint64_t noDriftChecks_ = 0;
  std::uint64_t writeAheads_ = 0;
  std::uint64_t linksWantedInPass_ = 0;

  const DpdkDevices* dpdk_;
  // Where binds and give-backs run (they may wait for a driver to settle): not the AWS worker the
  // tagger shares, when the caller gives another.
  Executor& devicesExecutor_;
  std::map<std::string, DeviceBinding> bound_;  // ENI ID -> its device's binding
  std::set<std::string> binding_;               // ENI IDs whose bind is in flight
  std::set<std::string> givingBack_;            // ... whose device is being given back
  struct BindFailure {
    std::string owner;
    std::string message;
    bool retry = false;  // a later pass may get past it; else only a NodeENI change or the check
  };
  std::map<std::string, BindFailure> bindFailures_;  // ENI ID -> why its bind failed
  bool bindRetryDue_ = false;  // the drift check or a NodeENI change: failed binds are tried again
};

}  // namespace eni
