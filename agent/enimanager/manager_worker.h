#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/eni/eni_actions.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/link_reconciler.h"
#include "agent/enimanager/eni_manager_pass.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

/// The ENI manager's part on its AWS worker thread: observe() (IMDS, and EC2 unless the records
/// are confirmed) and apply() (the ensure steps, through EniLifecycle), with the caches only that
/// thread touches: names resolved once, security groups' VPCs, and the DeleteOnTermination memo.
/// Worker thread only.
class ManagerWorker {
 public:
  ManagerWorker(Ec2Api& ec2, Imds& imds, EniLifecycle& lifecycle)
      : ec2_(ec2), imds_(imds), lifecycle_(lifecycle) {}

  ManagerObservation observe(const ManagerPassInput& in);
  /// Runs the plan's ensure steps in order (a dry run logs them); one result per step. Each ENI's
  /// link goes to `wanted` (on this thread) as soon as its MAC is known, before its attach.
  std::vector<EnsureResult> apply(const ManagerPassInput& in, const ManagerPlan& plan,
                                  const OnLinkWanted& wanted = nullptr);
  /// IMDS's view of this instance's interfaces (what the next check compares against), for the
  /// ENIs that are not eni-agent's; nullopt when IMDS does not answer. Free: IMDS, not EC2.
  std::optional<InterfaceMap> interfaces();
  const DeleteOnTerminationMemo& memo() const { return memo_; }

 private:
  bool identify(const ManagerPassInput& in, ManagerObservation& out);
  bool confirm(const ManagerPassInput& in, ManagerObservation& out);
  bool noDrift(const ManagerPassInput& in, ManagerObservation& out);
  void resolveNames(const ManagerPassInput& in, ManagerObservation& out);
  void readGroupVpcs(const ManagerPassInput& in, ManagerObservation& out);

  Ec2Api& ec2_;
  Imds& imds_;
  EniLifecycle& lifecycle_;
  std::map<std::string, std::string> subnetNameCache_;  // Name tag -> subnet ID
  std::map<std::string, std::string> groupNameCache_;   // group name -> group ID
  std::map<std::string, std::string> groupVpcCache_;    // group ID -> VPC ID
  DeleteOnTerminationMemo memo_;
};

}  // namespace eni
