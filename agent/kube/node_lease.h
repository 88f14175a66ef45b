#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <json/value.h>

#include "agent/base/clock.h"
#include "agent/base/timer.h"
#include "agent/kube/kube_api.h"

namespace eni {

/// coordination.k8s.io/v1 Leases.
inline ResourceKind leasesKind() { return {"/apis/coordination.k8s.io/v1", "leases", true}; }

/// The namespace the agent's lease lives in when POD_NAMESPACE is not set.
inline constexpr const char* kDefaultLeaseNamespace = "eni-agent";

/// "eni-agent-<node>": a valid object name (a DNS subdomain: at most 253 characters of [a-z0-9-.],
/// alphanumeric at both ends). A node name that would not fit, or holds other characters, is cut
/// or mapped and gets a hash of the whole name appended, so two nodes never share a lease.
std::string leaseNameFor(const std::string& nodeName);

/// Who holds the lease: the pod name (POD_NAME from the downward API), else "<hostname>_<pid>".
/// A container restarted in the same pod keeps its pod name, so it takes its lease back at once.
std::string leaseIdentity(const std::string& podName);

struct NodeLeaseOptions {
  std::string ns = kDefaultLeaseNamespace;
  std::string name;      // leaseNameFor(node)
  std::string identity;  // leaseIdentity(POD_NAME)
  /// How long a holder that stopped renewing keeps the lease, counted on the waiting agent's own
  /// clock from when it last saw the record change (no trust in other clocks), as client-go does.
  Duration leaseDuration{15000};
  Duration renewInterval{5000};
  /// How often a waiting agent reads the lease; also the retry delay after a failed call.
  Duration retryInterval{2000};
};

/// One agent per node: holds the node's Lease so that a second agent started for the same node
/// (a stray process, a surge pod during a rollout) does not write. It acquires the lease (creates
/// it, or takes it when it is free, its own, or expired), renews it every renewInterval and
/// releases it on request. `acquired` runs once, when it is first held; `lost` runs once, when a
/// renewal finds that another agent took it over (after this one could not renew for
/// leaseDuration). A renewal that fails for another reason (the API server away) keeps the lease
/// and retries: nobody else can take it over without the API server either. Loop thread only.
class NodeLease {
 public:
  struct Handlers {
    std::function<void()> acquired;
    std::function<void(const std::string& why)> lost;
  };

  NodeLease(KubeApi& api, Scheduler& scheduler, const Clock& clock, NodeLeaseOptions options,
            Handlers handlers);
  ~NodeLease();
  NodeLease(const NodeLease&) = delete;
  NodeLease& operator=(const NodeLease&) = delete;

  void start();
  /// Gives the lease up (no holder), so that the next agent takes it at its next read instead of
  /// after leaseDuration. Stops renewing. `done` runs once; at once when the lease is not held.
  void release(const std::function<void(Result<void>)>& done);

  bool held() const { return held_; }
  /// Empty while held; else why not, as a readiness reason: "HeldByOther: held by <pod>; ...",
  /// "Forbidden: ...", "LeaseError: ..." or "Acquiring: ...". It does not change while the same
  /// holder renews.
  std::string notReadyReason() const;

 private:
  void attempt();
  void onRead(Result<Json::Value> read);
  void take(Json::Value lease, bool fresh);
  void becomeHolder(Json::Value lease);
  void renew();
  void onRenewFailed(const Error& error);
  void waitFor(const Json::Value& lease);
  void failed(const std::string& what, const Error& error);
  void retryIn(Duration delay, void (NodeLease::*step)());
  void loseTo(const std::string& holder);
  ObjectRef ref() const;
  Json::Value record(Json::Value lease, bool taking) const;

  KubeApi& api_;
  const Clock& clock_;
  NodeLeaseOptions options_;
  Handlers handlers_;
  bool held_ = false;
  bool everHeld_ = false;
  bool stopped_ = false;
  Timer next_;  // runs nextStep_: the next read or renewal
  void (NodeLease::*nextStep_)() = &NodeLease::attempt;
  Json::Value lease_;  // the last version read or written
  std::string reason_ = "Acquiring: reading the lease";
  // The other holder's record as last seen, and when it last changed on this agent's clock.
  std::string observed_;
  TimePoint observedAt_{};
  std::string lastHolderLogged_;
};

}  // namespace eni
