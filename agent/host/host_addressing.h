#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/link_reconciler.h"
#include "agent/host/host_pass.h"
#include "netlink/address_manager.h"

namespace eni {

/// host.json's configureAddress and policyRouting: once an interface's link is Configured (up,
/// with its MTU), its primary IPv4 and its route table and rule are applied through the
/// AddressManager; when the address, the device index or the wishes change, the old addressing
/// is removed first; when the interface leaves host.json, what was applied is removed. A link
/// that is gone took its addresses and routes with it. Failures are logged and retried at the
/// next pass or link event. Loop thread only.
class HostAddressing {
 public:
  HostAddressing(AddressManager& addresses, const LinkReconciler& links)
      : addresses_(addresses), links_(links) {}

  /// The interfaces host mode has attached now (HostReconciler::setOnLinks).
  void update(const std::vector<HostLink>& wanted);

  /// The kernel lost something on `ifindex` (0: anywhere): the next update() applies again.
  void forget(int ifindex);
  /// True when some interface wants its address configured (then the address events matter).
  static bool wantsAddresses(const std::vector<HostLink>& wanted);

  /// What is applied, by interface key.
  const std::map<std::string, InterfaceAddressing>& applied() const { return applied_; }
  std::uint64_t failures() const { return failures_; }

 private:
  /// Applies one interface's addressing once its link is Configured (old addressing first goes).
  void applyTo(const HostLink& link);
  /// Removes what was applied for interfaces no longer in `keys`.
  void removeLeft(const std::set<std::string>& keys);

  AddressManager& addresses_;
  const LinkReconciler& links_;
  std::map<std::string, InterfaceAddressing> applied_;
  std::map<std::string, std::string> lastError_;
  std::uint64_t failures_ = 0;
};

}  // namespace eni
