#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/executor.h"
#include "agent/base/pass_runner.h"
#include "agent/base/timer.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/eni/write_ahead.h"
#include "agent/host/host_config.h"
#include "agent/host/host_pass.h"
#include "agent/host/host_worker.h"
#include "agent/state/node_state.h"
#include "agent/state/node_state_store.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

struct HostReconcilerOptions {
  bool dryRun = false;  // compute and log every write, send none
  Duration debounce{50};
  Duration retryDelay{5000};
  /// Drift check: one filtered Describe of this instance's ENIs, owned tags reapplied. 0: off.
  Duration resyncInterval = std::chrono::minutes(30);
};

/// Host mode's reconciler: host.json's tags on every ENI of this instance, its interfaces
/// created, attached and brought up, and the node state (state.json) as the ownership record and
/// warm cache. One PassRunner runs the passes, each observe -> plan -> apply -> record:
/// - observe (AWS worker, HostWorker): IMDS (identity, interfaces), and EC2 only when due: a
///   Describe of ENIs the state does not know (or all of them on a drift check), subnet names, and
///   the ENIs by ownership tags when an interface is not recorded and attached, or a write-ahead
///   is on record.
/// - plan: planEniActions (shared with the ENI manager): an interface recorded and still attached
///   in its subnet costs nothing; else it is found by ownership tags (never an ENI
///   whyNeverManaged() names), else created (ownershipTags, NodeENI=host-<index>, Node=<instance
///   ID>) once the write-ahead (NodeState::creating) names it, attached at the first free device
///   index from its deviceIndex, and DeleteOnTermination set. ENIs that left host.json are released
///   only as releasable() allows: recorded (or named by the write-ahead), carrying the ownership
///   tags and no mark of someone else's ENI, attached here or nowhere. A state of another instance
///   counts for nothing. Tags: planEni per ENI (HostTagStage).
/// - apply: the ensure steps and tag writes on the AWS worker through EniLifecycle; the releases
///   through EniLifecycle::release, on its own executor.
/// - record: the new state into the NodeStateStore; each attached interface's MAC and MTU to the
///   LinkReconciler (handed over mid-pass already, as soon as the worker knew the MAC; the pass's
///   end drops those that did not get attached).
/// Loop thread only, but for the worker's part.
class HostReconciler {
 public:
  HostReconciler(Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
                 EniLifecycle& lifecycle, NodeStateStore& store, LinkReconciler* links,
                 HostReconcilerOptions options);
  ~HostReconciler();
  HostReconciler(const HostReconciler&) = delete;
  HostReconciler& operator=(const HostReconciler&) = delete;

  /// Begins with `config` and the store's state (empty: a cold start). Loop thread.
  void start(HostConfig config);
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
  const NodeState& state() const { return store_.current(); }
  const std::vector<HostLink>& hostLinks() const { return hostLinks_; }
  bool idle() const { return runner_.idle(); }
  std::uint64_t passes() const { return runner_.passes(); }
  /// Passes that left no failure to retry (a pass that only stored a write-ahead counts).
  std::uint64_t completePasses() const { return completePasses_; }

 private:
  struct Pass;
  void runPass(PassRunner::Done done);
  /// Hands each ENI's link to the LinkReconciler as soon as the worker knows its MAC; nullptr
  /// without one. Called on the loop thread; what it returns runs on the AWS worker.
  OnLinkWanted linkWanted();
  void release(const std::shared_ptr<Pass>& pass);
  void finish(const std::shared_ptr<Pass>& pass);
  void logReleases(const std::vector<ReleaseResult>& released);
  void keepState(NodeState state, const std::vector<std::string>& needWriteAhead, bool retry);
  void manageLinks();
  void report(const HostWork& work, bool retry, bool waitsForWriteAhead);
  void recordWriteAhead();
  void armResync();
  /// The LinkReconciler's names and states into the attachment records.
  void withLinks(NodeState& state) const;
  /// A managed link changed: the records follow, the addressing is told.
  void onLinkChange();
  void warnOnce(const std::string& eniId, const std::string& reason);

  Executor& executor_;
  EniLifecycle& lifecycle_;
  NodeStateStore& store_;
  LinkReconciler* links_;
  HostReconcilerOptions options_;
  HostWorker worker_;  // its AWS worker's part: used on that thread only
  PassRunner runner_;
  Timer resync_;

  HostConfig config_;
  CreateWriteAhead writeAhead_;
  std::vector<HostLink> hostLinks_;
  std::function<void(const HostPassReport&)> onPass_;
  std::function<void(const std::vector<HostLink>&)> onLinks_;
  bool verifyNext_ = false;  // the next pass describes every ENI (drift check)
  std::uint64_t completePasses_ = 0;
  std::string lastProblems_;
  std::set<std::string> refusedEnis_;  // warned about once
};

}  // namespace eni
