#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/eni_actions.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/host/host_pass.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

/// What the worker's part of a host pass leaves for the loop thread.
struct HostWork {
  HostObservation observed;
  EniActions actions;
  std::vector<EnsureResult> ensured;
  HostInterfaces interfaces;
  NodeState state;  // the new state, releases aside
  std::vector<std::string> problems;
  bool retry = false;
  std::size_t enis = 0;  // ENIs of this instance
};

/// Host mode's part on its AWS worker thread: observe (IMDS; EC2 only when due), the interfaces'
/// plan (planEniActions) and ensure steps, and the tags: planEni per ENI, exactly as for pods,
/// written through EniLifecycle::applyTagPlans. It owns the caches only that thread touches:
/// subnet names and CIDRs, and the DeleteOnTermination memo. Worker thread only.
class HostWorker {
 public:
  HostWorker(Ec2Api& ec2, Imds& imds, EniLifecycle& lifecycle)
      : ec2_(ec2), imds_(imds), lifecycle_(lifecycle) {}

  /// The whole worker part of one pass. Each ENI's link goes to `wanted` (on this thread) as soon
  /// as its MAC is known, before its attach.
  void run(const HostPassInput& in, HostWork& out, const OnLinkWanted& wanted = nullptr);

 private:
  bool observe(const HostPassInput& in, HostObservation& out);
  void resolve(const HostPassInput& in, HostObservation& out);
  void lifecycleView(const HostPassInput& in, HostObservation& out);
  void apply(const HostPassInput& in, HostWork& out, const OnLinkWanted& wanted);
  void subnetCidrs(HostInterfaces& interfaces, const HostObservation& observed);
  void tags(const HostPassInput& in, HostWork& out);

  Ec2Api& ec2_;
  Imds& imds_;
  EniLifecycle& lifecycle_;
  std::map<std::string, std::string> subnetNameCache_;  // Name tag -> subnet ID
  std::map<std::string, std::string> subnetCidrCache_;  // subnet ID -> CIDR
  DeleteOnTerminationMemo memo_;
};

}  // namespace eni
