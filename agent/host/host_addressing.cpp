#include "agent/host/host_addressing.h"

#include <set>

#include "agent/base/log.h"

namespace eni {

void HostAddressing::forget(int ifindex) {
  for (auto it = applied_.begin(); it != applied_.end();) {
    it = ifindex == 0 || it->second.ifindex == ifindex ? applied_.erase(it) : std::next(it);
  }
}

bool HostAddressing::wantsAddresses(const std::vector<HostLink>& wanted) {
  for (const auto& l : wanted) {
    if (l.configureAddress || l.policyRouting) return true;
  }
  return false;
}

void HostAddressing::update(const std::vector<HostLink>& wanted) {
  std::set<std::string> keys;
  for (const HostLink& link : wanted) {
    if (!link.configureAddress && !link.policyRouting) continue;
    keys.insert(link.key);
    applyTo(link);
  }
  removeLeft(keys);
}

void HostAddressing::applyTo(const HostLink& link) {
  auto managed = links_.links().find(link.mac);
  const bool up = managed != links_.links().end() &&
                  managed->second.state == LinkState::Configured && managed->second.ifindex > 0;
  if (!up) {
    // Gone or not yet there: a deleted link took its addresses and routes with it.
    if (managed == links_.links().end() || managed->second.state == LinkState::Gone) {
      applied_.erase(link.key);
    }
    return;
  }
  auto plan = planAddressing(managed->second.ifindex, link.primaryIpv4, link.subnetCidr,
                             link.deviceIndex, link.configureAddress, link.policyRouting);
  if (!plan) {
    if (lastError_[link.key] != plan.error().message) {
      logWarn("cannot address interface, ignoring until the next change",
              {{"interface", link.key}, {"eni", link.eniId}, {"error", plan.error().message}});
      lastError_[link.key] = plan.error().message;
    }
    return;
  }
  auto current = applied_.find(link.key);
  if (current != applied_.end() && current->second == *plan) return;
  if (current != applied_.end()) {
    if (auto r = addresses_.remove(current->second); !r) {
      logWarn("cannot remove the old addressing, will retry",
              {{"interface", link.key}, {"error", r.error().message}});
      ++failures_;
      return;
    }
    applied_.erase(current);
  }
  if (auto r = addresses_.apply(*plan); !r) {
    ++failures_;
    if (lastError_[link.key] != r.error().message) {
      logWarn("cannot configure address or routing, will retry at the next pass or link event",
              {{"interface", link.key}, {"eni", link.eniId}, {"error", r.error().message}});
      lastError_[link.key] = r.error().message;
    }
    return;
  }
  lastError_.erase(link.key);
  logInfo(
      "configured interface addressing",
      {{"interface", link.key},
       {"link", managed->second.name},
       {"address", plan->configureAddress ? plan->address + "/" + std::to_string(plan->prefixLength)
                                          : "unchanged"},
       {"table", plan->policyRouting ? std::to_string(plan->table) : "none"}});
  applied_[link.key] = *plan;
}

void HostAddressing::removeLeft(const std::set<std::string>& keys) {
  for (auto it = applied_.begin(); it != applied_.end();) {
    if (keys.count(it->first) != 0) {
      ++it;
      continue;
    }
    if (auto r = addresses_.remove(it->second); !r) {
      logWarn("cannot remove addressing of an interface that left host.json, will retry",
              {{"interface", it->first}, {"error", r.error().message}});
      ++failures_;
      ++it;
      continue;
    }
    logInfo("removed interface addressing", {{"interface", it->first}});
    it = applied_.erase(it);
  }
}

}  // namespace eni
