#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/error.h"
#include "agent/base/executor.h"
#include "agent/eni/eni_actions.h"
#include "agent/eni/ownership.h"
#include "agent/eni/planner.h"
#include "ec2/ec2_api.h"

namespace eni {

struct EniLifecycleOptions {
  /// Releases handed to the release executor at once; the rest wait in order (as
  /// aws-multi-eni-controller's MAX_CONCURRENT_ENI_CLEANUP, 3). Give the executor as many threads.
  std::size_t releaseConcurrency = 3;
  int detachPolls = 30;  // waiting for "available" after a detach, one poll per interval
  Duration detachPollInterval{1000};
  /// Test hook for the crash-safety tests: "created" or "attached" makes the agent SIGKILL itself
  /// right after that step. Empty in production (ENI_AGENT_CRASH_POINT sets it).
  std::string crashPoint;
};

/// Which ENIs findOwned() lists (one filtered Describe).
struct OwnedFilter {
  /// Every ENI tagged Node=<node>: eni-agent's own, aws-multi-eni-controller's to adopt, and any
  /// that merely name the node (the ENI manager's view).
  static OwnedFilter byNode(const std::string& node);
  /// Every ENI carrying eni-agent's ownership tags for the instance (host mode's view).
  static OwnedFilter byInstance(const std::string& instanceId);
  std::vector<Filter> filters;
};

/// Which step stopped an ensure, and why.
struct EnsureFailure {
  EniActionKind step = EniActionKind::Create;  // Adopt, Create or Attach
  Error error;
};

struct EnsureResult {
  std::string owner;
  NetworkInterface eni;   // as it ends: created or found, with its attachment here when attached
  bool attached = false;  // attached here: it serves its owner
  bool created = false;
  std::optional<EnsureFailure> failure;      // adopt, create or attach failed: stopped there
  std::optional<Error> deleteOnTermination;  // the ModifyNetworkInterfaceAttribute failed
};

/// What stopped `step` (result.failure set): "cannot attach eni-... at device index 2: ...",
/// ending "; will retry" when the error is one a later pass may get past. Both modes report it.
std::string ensureFailureText(const EnsureResult& result, const EnsureStep& step);

/// Called on the AWS worker with an ENI whose MAC became known while an ensure step runs.
using OnEniKnown = std::function<void(const NetworkInterface& eni)>;

/// What licenses a release; release() checks it against a Describe of its own.
struct ReleaseGrounds {
  std::string instanceId;
  RecordedAttachments records;
  std::set<std::string> creating;  // the write-ahead as stored
  std::string ownerPrefix;         // as LifecycleObservation::ownerPrefix
};

enum class ReleaseOutcome {
  Released,  // detached and deleted
  Gone,      // EC2 no longer has it
  Refused,   // its tags or the release rule say it is not eni-agent's to release
  Failed,    // a call failed or the detach did not finish: retried by a later pass
};

struct ReleaseResult {
  std::string eniId;
  std::string owner;
  ReleaseOutcome outcome = ReleaseOutcome::Failed;
  std::string message;   // Refused: the reason; Failed: what failed
  NetworkInterface eni;  // as last seen (the step's view when no Describe answered)
};

/// A failed tag write of one ENI.
struct TagWriteFailure {
  std::string message;  // "CreateTags on eni-1 failed: <EC2's error>"
  bool retryable = false;
  bool create = false;  // the CreateTags failed (else only the DeleteTags)
};

struct TagWriteOutcome {
  std::map<std::string, TagWriteFailure> failed;  // by ENI ID
  int failedCalls = 0;
};

/// The ENI lifecycle both modes share, as named verbs (amazon-vpc-cni-k8s's AllocENI/FreeENI):
/// find by ownership tags, ensure attached (adopt or create with a ClientToken, attach at a free
/// device index, DeleteOnTermination), release (verify, detach, wait, delete) and the tag writes.
/// findOwned, ensureAttached and applyTagPlans block: call them on the reconciler's AWS worker.
/// release() is called on the loop thread and runs on the release executor, never on that
/// worker, so waiting for a detach holds up neither tagging nor a pass's other calls; its result
/// comes back on the loop thread. The Ec2Api must be safe to call from several threads.
class EniLifecycle {
 public:
  EniLifecycle(Ec2Api& ec2, Executor& releases, Sleeper& sleeper, EniLifecycleOptions options);
  EniLifecycle(const EniLifecycle&) = delete;
  EniLifecycle& operator=(const EniLifecycle&) = delete;

  /// The ENIs `filter` selects, as one Describe shows them.
  [[nodiscard]] Result<std::vector<NetworkInterface>> findOwned(const OwnedFilter& filter);
  /// Runs one ensure step: adopt (tags), create (ClientToken, ownership tags), attach at
  /// step.attachAt, DeleteOnTermination (recorded in `memo` once set). Stops at the first failing
  /// adopt, create or attach; a failed DeleteOnTermination leaves the ENI attached. `known`, when
  /// set, is called on this thread with the ENI as soon as its MAC is known (the create's answer,
  /// or the Describe the step was planned from, once adopted) and before the attach, so that its
  /// link can be managed before the kernel shows it.
  EnsureResult ensureAttached(const EnsureStep& step, const Ownership& ownership,
                              DeleteOnTerminationMemo& memo, const OnEniKnown& known = nullptr);
  /// Releases one ENI on the release executor (at most releaseConcurrency at once; the others
  /// queue): the ownership tags and releasable() on the step's view when a Describe of this pass
  /// made it, else on a Describe of its own (gone: done), else Refused; then detach, wait until
  /// available (an ENI that is gone counts as released), delete. `done` runs on the loop thread.
  /// Loop thread.
  void release(ReleaseStep step, ReleaseGrounds grounds, std::function<void(ReleaseResult)> done);
  /// The one tag-write loop: coalesceWrites() into CreateTags and DeleteTags calls, DeleteTags
  /// after CreateTags and never on an ENI whose CreateTags failed; the failures per ENI.
  TagWriteOutcome applyTagPlans(const std::vector<EniPlan>& plans);
  /// Releases in progress stop waiting and fail (a stopping agent). Any thread.
  void stop() { stopping_ = true; }
  /// Releases asked for whose result has not come back, queued ones included. Loop thread.
  std::size_t releasesInFlight() const { return inFlight_ + queued_.size(); }

 private:
  struct Queued {
    ReleaseStep step;
    ReleaseGrounds grounds;
    std::function<void(ReleaseResult)> done;
  };
  void dispatch();
  ReleaseResult releaseNow(const ReleaseStep& step, const ReleaseGrounds& grounds);
  /// Why the release rule refuses `eni`; "" when it may be released.
  static std::string refusal(const NetworkInterface& eni, const ReleaseGrounds& grounds);
  /// The ENI as a Describe by ID shows it; nullopt when EC2 has no such ENI.
  Result<std::optional<NetworkInterface>> describeOne(const std::string& eniId);
  /// Polls until the ENI is available or gone; the error says why it is not.
  Result<void> waitDetached(const std::string& eniId);
  void crashPoint(const char* where) const;

  Ec2Api& ec2_;
  Executor& releases_;
  Sleeper& sleeper_;
  EniLifecycleOptions options_;
  std::atomic<bool> stopping_{false};
  std::size_t inFlight_ = 0;   // on the executor
  std::deque<Queued> queued_;  // waiting for a free slot
};

/// A dry run's account of `actions`: one "dry run: would ..." line per action, nothing sent.
void logDryRun(const EniActions& actions);

}  // namespace eni
