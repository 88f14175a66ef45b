#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/eni_lifecycle.h"
#include "agent/eni/planner.h"
#include "agent/eni/tags.h"
#include "agent/state/node_state.h"
#include "ec2/ec2_api.h"
#include "ec2/imds.h"

namespace eni {

/// host.json's tags on every ENI of this instance, in one pass: planEni per ENI exactly as for
/// pods (only keys it applied are changed or removed; foreign keys and foreign hashes are never
/// overwritten), one Describe of the ENIs a new key goes to before writing it, the writes through
/// EniLifecycle::applyTagPlans, and the results into NodeState::enis. An ENI found in conflict
/// stays skipped while host.json's tags are the same, until a Describe shows it again. Worker
/// thread only.
class HostTagStage {
 public:
  HostTagStage(Ec2Api& ec2, EniLifecycle& lifecycle, bool dryRun)
      : ec2_(ec2), lifecycle_(lifecycle), dryRun_(dryRun) {}

  /// `attached` is IMDS's view, `attachedNow` what this pass attached, `leaving` what it is about
  /// to release (not tagged), `observed` the ENIs a Describe showed (read for new keys here).
  void run(const TagSet& tags, const InterfaceMap& attached,
           const std::map<std::string, NetworkInterface>& attachedNow,
           const std::set<std::string>& leaving, std::map<std::string, NetworkInterface>& observed,
           NodeState& state);

  std::size_t enis() const { return enis_.size(); }
  const std::vector<std::string>& problems() const { return problems_; }
  bool retry() const { return retry_; }

 private:
  struct Seen {
    std::string mac;
    std::int64_t deviceIndex = -1;
    std::string subnet;
    std::string ip;
  };
  void collect(const InterfaceMap& attached,
               const std::map<std::string, NetworkInterface>& attachedNow,
               const std::set<std::string>& leaving, NodeState& state);
  EniPlan plan(const std::string& id, const TagSet& tags, const NodeState& state,
               const std::map<std::string, NetworkInterface>& observed) const;
  void skipConflicts(const std::string& conflictMark, const NodeState& state,
                     const std::map<std::string, NetworkInterface>& observed);
  /// The plans; false (a problem, retried) when the Describe of ENIs that get new keys failed.
  bool planAll(const TagSet& tags, const NodeState& state,
               std::map<std::string, NetworkInterface>& observed, std::vector<EniPlan>& plans);
  std::set<std::string> write(const std::vector<EniPlan>& plans);
  void record(const std::vector<EniPlan>& plans, const std::set<std::string>& failed,
              NodeState& state);

  Ec2Api& ec2_;
  EniLifecycle& lifecycle_;
  bool dryRun_;
  std::map<std::string, Seen> enis_;  // every ENI of this instance that is tagged
  std::set<std::string> skipped_;     // in conflict, left alone while the tags are the same
  std::vector<std::string> problems_;
  bool retry_ = false;
};

}  // namespace eni
