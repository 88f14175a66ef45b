#include "agent/host/host_tags.h"

#include <algorithm>
#include <cctype>

#include "agent/base/log.h"

namespace eni {
namespace {

constexpr const char* kHostDesireKey = "host.json";

std::string lowerMac(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

TagSet tagsOf(const NetworkInterface& eni) {
  TagSet out;
  for (const auto& t : eni.tags) out[t.key] = t.value;
  return out;
}

}  // namespace

void HostTagStage::run(const TagSet& tags, const InterfaceMap& attached,
                       const std::map<std::string, NetworkInterface>& attachedNow,
                       const std::set<std::string>& leaving,
                       std::map<std::string, NetworkInterface>& observed, NodeState& state) {
  collect(attached, attachedNow, leaving, state);
  const std::string conflictMark = "conflict:" + (tags.empty() ? "" : tagHash(tags));
  skipConflicts(conflictMark, state, observed);
  std::vector<EniPlan> plans;
  if (!planAll(tags, state, observed, plans)) return;
  std::set<std::string> conflicts;
  for (const auto& p : plans) {
    for (const auto& v : p.verdicts) {
      if (v.reason != SyncReason::Conflict) continue;
      problems_.push_back("tags: " + v.message);
      conflicts.insert(p.eniId);
    }
  }
  const std::set<std::string> failed = write(plans);
  for (const auto& p : plans) {
    EniRecord& r = state.enis[p.eniId];
    const std::string ip = enis_[p.eniId].ip;
    if (conflicts.count(p.eniId) != 0) {
      r.pods[kHostDesireKey] = PodRecord{conflictMark, ip};
    } else {
      r.pods.erase(kHostDesireKey);
    }
  }
  record(plans, failed, state);
}

// Every ENI of this instance: what IMDS lists and what this pass attached, less what it releases.
void HostTagStage::collect(const InterfaceMap& attached,
                           const std::map<std::string, NetworkInterface>& attachedNow,
                           const std::set<std::string>& leaving, NodeState& state) {
  for (const auto& i : attached.interfaces) {
    if (leaving.count(i.interfaceId) != 0) continue;
    enis_[i.interfaceId] = {lowerMac(i.mac), i.deviceNumber, i.subnetId,
                            i.localIpv4s.empty() ? "" : i.localIpv4s.front()};
  }
  for (const auto& [id, e] : attachedNow) {
    enis_[id] = {lowerMac(e.macAddress), e.attachment ? e.attachment->deviceIndex : -1, e.subnetId,
                 e.privateIpAddress};
  }
  // ENIs that left this instance leave the record.
  for (auto it = state.enis.begin(); it != state.enis.end();) {
    it = enis_.count(it->first) == 0 ? state.enis.erase(it) : std::next(it);
  }
}

EniPlan HostTagStage::plan(const std::string& id, const TagSet& tags, const NodeState& state,
                           const std::map<std::string, NetworkInterface>& observed) const {
  EniInput input;
  input.eniId = id;
  auto record = state.enis.find(id);
  if (record != state.enis.end()) input.record = &record->second;
  TagSet seen;
  if (auto o = observed.find(id); o != observed.end()) {
    seen = tagsOf(o->second);
    input.observed = &seen;
  }
  PodDesire desire;
  desire.key = kHostDesireKey;
  desire.ip = enis_.at(id).ip;
  desire.tags = tags;
  input.pods.push_back(desire);
  return planEni(input, PlanOptions{});
}

// An ENI found in conflict (another tool's hash or values) stays skipped while host.json's tags
// are the same, until a Describe (drift check) shows it again: no read per pass or restart.
void HostTagStage::skipConflicts(const std::string& conflictMark, const NodeState& state,
                                 const std::map<std::string, NetworkInterface>& observed) {
  for (const auto& [id, seen] : enis_) {
    auto record = state.enis.find(id);
    if (record == state.enis.end() || observed.count(id) != 0) continue;
    auto mark = record->second.pods.find(kHostDesireKey);
    if (mark != record->second.pods.end() && mark->second.uid == conflictMark) {
      skipped_.insert(id);
      problems_.push_back("tags: ENI " + id +
                          " is tagged by another tool (conflict found earlier); not tagging it");
    }
  }
}

bool HostTagStage::planAll(const TagSet& tags, const NodeState& state,
                           std::map<std::string, NetworkInterface>& observed,
                           std::vector<EniPlan>& plans) {
  std::vector<std::string> unseen;  // would set keys it does not own without having seen the ENI
  for (const auto& [id, seen] : enis_) {
    if (skipped_.count(id) != 0) continue;
    EniPlan p = plan(id, tags, state, observed);
    const auto record = state.enis.find(id);
    const bool owns = record != state.enis.end();
    if (observed.count(id) == 0 && std::any_of(p.toSet.begin(), p.toSet.end(), [&](const auto& kv) {
          return kv.first != kHashTagKey && (!owns || record->second.tags.count(kv.first) == 0);
        })) {
      unseen.push_back(id);
    }
    plans.push_back(std::move(p));
  }
  if (unseen.empty()) return true;
  // New keys: look at those ENIs first, so a tag someone else set is never overwritten.
  auto described = ec2_.describeNetworkInterfaces({}, {{"network-interface-id", unseen}});
  if (!described) {
    problems_.push_back("cannot describe ENIs before tagging them: " +
                        described.error().describe() + "; will retry");
    retry_ = true;
    return false;
  }
  for (auto& e : *described) observed[e.id] = std::move(e);
  plans.clear();
  for (const auto& [id, seen] : enis_) {
    if (skipped_.count(id) == 0) plans.push_back(plan(id, tags, state, observed));
  }
  return true;
}

std::set<std::string> HostTagStage::write(const std::vector<EniPlan>& plans) {
  std::set<std::string> failed;
  if (dryRun_) {
    for (const auto& p : plans) {
      if (p.writes())
        logInfo("dry run: would write tags", {{"eni", p.eniId}, {"set", tagsToJson(p.toSet)}});
    }
    return failed;
  }
  const TagWriteOutcome outcome = lifecycle_.applyTagPlans(plans);
  for (const auto& [id, failure] : outcome.failed) {
    problems_.push_back(failure.message + "; will retry");
    retry_ = true;
    failed.insert(id);
  }
  std::size_t tagged = 0;
  for (const auto& p : plans) {
    if (p.writes() && failed.count(p.eniId) == 0) ++tagged;
  }
  if (tagged > 0) logInfo("tagged ENIs", {{"enis", std::to_string(tagged)}});
  return failed;
}

void HostTagStage::record(const std::vector<EniPlan>& plans, const std::set<std::string>& failed,
                          NodeState& state) {
  for (const auto& p : plans) {
    const Seen& seen = enis_[p.eniId];
    EniRecord& r = state.enis[p.eniId];
    r.mac = seen.mac;
    r.deviceIndex = seen.deviceIndex;
    r.subnet = seen.subnet;
    if (failed.count(p.eniId) != 0 || (dryRun_ && p.writes())) continue;
    r.tags = p.owned;
    r.hash = p.hash;
  }
}

}  // namespace eni
