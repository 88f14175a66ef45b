#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/base/error.h"
#include "agent/base/event_loop.h"

struct nl_sock;  // libnl
struct nl_msg;

namespace eni {

/// What host mode puts on one ENI's link: its primary IPv4 with the subnet's prefix length, and,
/// with policy routing, a table of its own (as amazon-ec2-net-utils does) holding a link-scope
/// route for the subnet and a default route via the subnet's gateway, plus a rule
/// `from <ip> lookup <table>` so that replies leave through the ENI they came in on.
struct InterfaceAddressing {
  int ifindex = 0;
  std::string address;             // "10.0.1.23"
  int prefixLength = 0;            // 24
  std::string subnet;              // "10.0.1.0/24"
  std::string gateway;             // "10.0.1.1": the subnet's first host, the VPC router
  std::uint32_t table = 0;         // 10000 + device index
  std::uint32_t rulePriority = 0;  // the table number too
  bool configureAddress = false;
  bool policyRouting = false;
  bool operator==(const InterfaceAddressing&) const = default;
};

/// The addressing for an ENI at `deviceIndex` with primary IPv4 `address` in `subnetCidr`
/// ("10.0.1.0/24"): Invalid when either is not IPv4 or the address is outside the subnet. Pure.
[[nodiscard]] Result<InterfaceAddressing> planAddressing(int ifindex, const std::string& address,
                                                         const std::string& subnetCidr,
                                                         std::int64_t deviceIndex,
                                                         bool configureAddress, bool policyRouting);

/// One route or rule as the kernel shows it, for status and tests.
struct RouteInfo {
  std::uint32_t table = 0;
  std::string destination;  // "10.0.1.0/24", "0.0.0.0/0"
  std::string gateway;      // empty for link-scope routes
  int ifindex = 0;
};
struct RuleInfo {
  std::uint32_t table = 0;
  std::uint32_t priority = 0;
  std::string source;  // "10.0.1.23/32"
};

/// Addresses, routes and rules over netlink. apply() is idempotent: an address already there,
/// a route already there (replaced) and an identical rule are left as they are; rules of the
/// same table with another source (the ENI's address changed) are removed. remove() takes away
/// exactly what apply() added. The link must be up (the kernel refuses routes on a down link).
/// Errors are typed like LinkManager's. Loop thread only.
class AddressManager {
 public:
  virtual ~AddressManager() = default;
  [[nodiscard]] virtual Result<void> apply(const InterfaceAddressing& want) = 0;
  [[nodiscard]] virtual Result<void> remove(const InterfaceAddressing& applied) = 0;
};

/// AddressManager over libnl-route-3 (rtnl_addr, rtnl_route, rtnl_rule), with one request socket
/// opened inside `netnsPath` when it is set, as NlLinkManager's, and kept for every call.
class NlAddressManager final : public AddressManager {
 public:
  explicit NlAddressManager(std::string netnsPath) : netnsPath_(std::move(netnsPath)) {}
  ~NlAddressManager() override;
  NlAddressManager(const NlAddressManager&) = delete;
  NlAddressManager& operator=(const NlAddressManager&) = delete;

  /// Opens the socket now (entering `netnsPath` needs CAP_SYS_ADMIN), so that later calls need no
  /// more than CAP_NET_ADMIN: the agent opens it before it drops to --run-as-user. Without it,
  /// the first call opens it. Idempotent.
  [[nodiscard]] Result<void> open();
  Result<void> apply(const InterfaceAddressing& want) override;
  Result<void> remove(const InterfaceAddressing& applied) override;

  /// The IPv4 addresses ("10.0.1.23/24") on `ifindex`.
  [[nodiscard]] Result<std::vector<std::string>> addresses(int ifindex);
  /// The IPv4 routes in `table`.
  [[nodiscard]] Result<std::vector<RouteInfo>> routes(std::uint32_t table);
  /// The IPv4 rules that look up `table`.
  [[nodiscard]] Result<std::vector<RuleInfo>> rules(std::uint32_t table);

 private:
  Result<nl_sock*> socket();
  std::string netnsPath_;
  nl_sock* socket_ = nullptr;
};

/// Address and rule deletions as the kernel announces them: a non-blocking libnl socket on the
/// event loop subscribed to RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV4_RULE, opened (inside `netnsPath`)
/// only when host mode configures addresses. `onDeleted` gets the ifindex whose IPv4 address was
/// deleted, or 0 when a rule was deleted or events were lost (an overrun): then everything is
/// worth re-checking. open() makes the socket early without subscribing (before the drop to
/// --run-as-user, as NlLinkManager::open); start() subscribes. Loop thread only.
class NlAddressWatch {
 public:
  NlAddressWatch(EventLoop& loop, std::string netnsPath)
      : loop_(loop), netnsPath_(std::move(netnsPath)) {}
  ~NlAddressWatch();
  NlAddressWatch(const NlAddressWatch&) = delete;
  NlAddressWatch& operator=(const NlAddressWatch&) = delete;
  [[nodiscard]] Result<void> open();
  [[nodiscard]] Result<void> start(std::function<void(int ifindex)> onDeleted);
  bool started() const { return watching_; }

 private:
  static int onMessage(nl_msg* msg, void* self);
  void readEvents();
  EventLoop& loop_;
  std::string netnsPath_;
  nl_sock* socket_ = nullptr;
  bool watching_ = false;
  std::function<void(int)> onDeleted_;
};

}  // namespace eni
