#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/executor.h"
#include "agent/eni/link_reconciler.h"
#include "agent/eni/ownership.h"
#include "agent/host/host_config.h"
#include "agent/host/state_file.h"
#include "agent/state/node_state.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

struct HostReconcilerOptions {
  bool dryRun = false;  // compute and log every write, send none
  Duration debounce{50};
  Duration retryDelay{5000};
  /// Drift check: one filtered Describe of this instance's ENIs, owned tags reapplied. 0: off.
  Duration resyncInterval = std::chrono::minutes(30);
  int detachPolls = 30;  // waiting for "available" after a detach
  /// Test hook for the crash-safety tests: "created" or "attached" makes the agent SIGKILL itself
  /// right after that step. Empty in production (ENI_AGENT_CRASH_POINT sets it).
  std::string crashPoint;
  Duration detachPollInterval{1000};
};

/// The address and routing wishes for one attached interface, for the address configurator.
struct HostLink {
  std::string key;  // HostInterface::key()
  std::string eniId;
  std::string mac;
  std::uint32_t mtu = 0;
  std::int64_t deviceIndex = -1;  // the attachment's real device index
  std::string primaryIpv4;
  std::string subnetCidr;  // e.g. 10.0.1.0/24, from IMDS
  bool configureAddress = false;
  bool policyRouting = false;
};

/// What one pass did, for STATUS=, readiness and logs.
struct HostPassReport {
  std::uint64_t pass = 0;
  bool complete = false;       // nothing left to retry or to create (config problems do not count)
  std::size_t enis = 0;        // ENIs of this instance
  std::size_t interfaces = 0;  // host.json interfaces attached
  std::size_t wanted = 0;      // host.json interfaces
  std::vector<std::string> problems;  // what to fix or what will be retried
};

/// Host mode's reconciler: host.json's tags on every ENI of this instance, its interfaces
/// created, attached and brought up, and state.json as the ownership record and warm cache.
///
/// A pass reads IMDS (instance identity and interfaces: no EC2 reads), then:
/// - Interfaces: one recorded in the state and still attached in its subnet costs nothing.
///   Otherwise it is found by ownership tags (one filtered Describe, so a crash never duplicates;
///   never an ENI whyNeverManaged() names), else created with the ownership tags (eni_planner's
///   ownershipTags, NodeENI=host-<index>, Node=<instance ID>) once state.json's write-ahead
///   (NodeState::creating) names the interface, attached at the first free device index from its
///   deviceIndex, and DeleteOnTermination set. ENIs that left host.json are detached and deleted
///   only as releasable() allows: recorded in state.json (or named by its write-ahead), carrying
///   the ownership tags and no mark of someone else's ENI, attached here or nowhere, as a
///   Describe of this pass shows them. A state.json of another instance counts for nothing.
/// - Tags: planEni per ENI, exactly as for pods: only keys it applied are changed or removed,
///   foreign keys and foreign hashes are never overwritten. ENIs not in the state (a cold start)
///   cost one filtered Describe; a config that adds keys costs one Describe of the ENIs it adds
///   them to (to see foreign tags); an unchanged config on a warm start costs nothing.
/// - Links: each attached interface's MAC and MTU go to the LinkReconciler.
/// Blocking AWS calls run on the executor; everything else on the loop thread.
class HostReconciler {
 public:
  HostReconciler(Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
                 Sleeper& sleeper, StateStore& store, LinkReconciler* links,
                 HostReconcilerOptions options);
  ~HostReconciler();
  HostReconciler(const HostReconciler&) = delete;
  HostReconciler& operator=(const HostReconciler&) = delete;

  /// Begins with `saved` (nullopt: cold start) and `config`. Loop thread.
  void start(HostConfig config, std::optional<NodeState> saved);
  /// A new valid config (SIGHUP): the next pass applies it. Loop thread.
  void setConfig(HostConfig config);
  /// Called on the loop thread after every pass.
  void setOnPass(std::function<void(const HostPassReport&)> onPass) { onPass_ = std::move(onPass); }
  /// Called on the loop thread with the attached interfaces after every pass and every change
  /// of a managed link's state.
  void setOnLinks(std::function<void(const std::vector<HostLink>&)> onLinks) {
    onLinks_ = std::move(onLinks);
  }

  const HostConfig& config() const { return config_; }
  const NodeState& state() const { return state_; }
  const std::vector<HostLink>& hostLinks() const { return hostLinks_; }
  bool idle() const { return !passRunning_ && !passScheduled_ && !dirty_; }
  std::uint64_t passes() const { return passes_; }
  /// Passes that left no failure to retry (a pass that only stored a write-ahead counts).
  std::uint64_t completePasses() const { return completePasses_; }

 private:
  struct PassInput;
  struct PassOutput;
  void markDirty();
  void schedule(Duration delay);
  void runPass();
  void work(PassInput& in, PassOutput& out);
  void interfaces(PassInput& in, PassOutput& out, const InterfaceMap& attached);
  /// Detaches and deletes the leftovers the release rule allows (releasable, with state.json's
  /// records and write-ahead), never another.
  void removeUnwanted(PassOutput& out, const std::vector<AttachmentRecord>& leaving,
                      const RecordedAttachments& recorded, const std::set<std::string>& keep);
  /// This instance's ENIs by ownership tags: one filtered Describe per pass, read when first
  /// needed; nullptr (with a problem, retried) when it fails.
  const std::vector<NetworkInterface>* ownedList(PassOutput& out);
  /// Detach, wait until available, delete; false (with a problem) when that did not finish.
  bool releaseEni(PassOutput& out, const NetworkInterface& eni);
  /// whyNeverManaged(), warned about once per ENI.
  std::string neverManagedWarned(const NetworkInterface& eni);
  void warnOnce(const std::string& eniId, const std::string& reason);
  void tags(PassInput& in, PassOutput& out, const InterfaceMap& attached);
  void finish(PassOutput& out);
  /// True when state.json holds state_ afterwards.
  bool onLinkChange();
  bool save();
  void crashPoint(const char* where) const;

  Ec2Api& ec2_;
  Imds& imds_;
  Scheduler& scheduler_;
  Executor& executor_;
  Sleeper& sleeper_;
  StateStore& store_;
  LinkReconciler* links_;
  HostReconcilerOptions options_;

  HostConfig config_;
  NodeState state_;
  std::string savedText_;  // what state.json holds, to write only on change
  std::vector<HostLink> hostLinks_;
  std::function<void(const HostPassReport&)> onPass_;
  std::function<void(const std::vector<HostLink>&)> onLinks_;
  bool started_ = false;
  bool passRunning_ = false;
  bool passScheduled_ = false;
  bool dirty_ = false;
  bool verifyNext_ = false;  // the next pass describes every ENI (drift check)
  TimerId timer_ = 0;
  TimerId resyncTimer_ = 0;
  bool resyncScheduled_ = false;
  std::uint64_t passes_ = 0;
  std::uint64_t completePasses_ = 0;
  std::string lastProblems_;
  // Worker thread only.
  std::map<std::string, std::string> subnetNameCache_;  // Name tag -> subnet ID
  std::map<std::string, bool> deleteOnTerminationSet_;  // interface key -> value sent
  std::map<std::string, std::string> subnetCidrCache_;  // subnet ID -> CIDR
  std::set<std::string> refusedEnis_;                   // warned about once
};

}  // namespace eni
