#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <memory>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <netlink/socket.h>

#include "netlink/address_manager.h"
#include "netlink/netns.h"
#include "netlink/nl_error.h"

namespace eni {
namespace {

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;
using Addr = std::unique_ptr<nl_addr, AddrDeleter>;
using Cache = std::unique_ptr<nl_cache, CacheDeleter>;

Result<Sock> openSocket(const std::string& netnsPath) {
  auto guard = NetnsGuard::enter(netnsPath);
  if (!guard) return fail(guard.error());
  Sock sock(nl_socket_alloc());
  if (!sock) return fail(ErrorCode::Internal, "nl_socket_alloc failed");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0)
    return fail(netlinkError("netlink connect", err));
  return sock;
}

Result<Addr> parse(const std::string& text) {
  nl_addr* a = nullptr;
  if (int err = nl_addr_parse(text.c_str(), AF_INET, &a); err < 0)
    return fail(netlinkError("address " + text, err));
  return Addr(a);
}

std::string format(nl_addr* a) {
  if (a == nullptr) return "";
  char buf[128];
  std::string out = nl_addr2str(a, buf, sizeof buf);
  if (out.find('/') == std::string::npos) out += "/" + std::to_string(nl_addr_get_prefixlen(a));
  return out;
}

bool parseIpv4(const std::string& text, std::uint32_t& out) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return false;
  out = ntohl(a.s_addr);
  return true;
}

std::string ipv4(std::uint32_t host) {
  in_addr a{};
  a.s_addr = htonl(host);
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

Result<void> addRoute(nl_sock* sock, const InterfaceAddressing& want, const std::string& dst,
                      const std::string& gateway) {
  auto dstAddr = parse(dst);
  if (!dstAddr) return fail(dstAddr.error());
  auto src = parse(want.address);
  if (!src) return fail(src.error());
  rtnl_route* route = rtnl_route_alloc();
  rtnl_route_set_family(route, AF_INET);
  rtnl_route_set_table(route, want.table);
  rtnl_route_set_type(route, RTN_UNICAST);
  rtnl_route_set_protocol(route, RTPROT_STATIC);
  rtnl_route_set_dst(route, dstAddr->get());
  rtnl_route_set_scope(route, gateway.empty() ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  if (want.configureAddress) rtnl_route_set_pref_src(route, src->get());
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(hop, want.ifindex);
  Addr gw;
  if (!gateway.empty()) {
    auto g = parse(gateway);
    if (!g) {
      rtnl_route_nh_free(hop);
      rtnl_route_put(route);
      return fail(g.error());
    }
    gw = std::move(*g);
    rtnl_route_nh_set_gateway(hop, gw.get());
  }
  rtnl_route_add_nexthop(route, hop);  // the route owns the hop now
  const int err = rtnl_route_add(sock, route, NLM_F_REPLACE);
  rtnl_route_put(route);
  if (err < 0) {
    return fail(netlinkError("route " + dst + " in table " + std::to_string(want.table), err));
  }
  return {};
}

}  // namespace

NlAddressManager::~NlAddressManager() {
  if (socket_ != nullptr) nl_socket_free(socket_);
}

Result<void> NlAddressManager::open() {
  if (socket_ != nullptr) return {};
  auto sock = openSocket(netnsPath_);
  if (!sock) return fail(sock.error());
  socket_ = sock->release();
  return {};
}

Result<nl_sock*> NlAddressManager::socket() {
  if (auto opened = open(); !opened) return fail(opened.error());
  return socket_;
}

Result<InterfaceAddressing> planAddressing(int ifindex, const std::string& address,
                                           const std::string& subnetCidr, std::int64_t deviceIndex,
                                           bool configureAddress, bool policyRouting) {
  std::uint32_t ip = 0, net = 0;
  const auto slash = subnetCidr.find('/');
  if (!parseIpv4(address, ip)) {
    return fail(ErrorCode::Invalid, "\"" + address + "\" is not an IPv4 address");
  }
  int prefix = -1;
  if (slash != std::string::npos) {
    const std::string bits = subnetCidr.substr(slash + 1);
    if (!bits.empty() && bits.size() <= 2 &&
        bits.find_first_not_of("0123456789") == std::string::npos) {
      prefix = std::stoi(bits);
    }
  }
  if (slash == std::string::npos || !parseIpv4(subnetCidr.substr(0, slash), net) || prefix < 1 ||
      prefix > 30) {
    return fail(ErrorCode::Invalid, "\"" + subnetCidr + "\" is not an IPv4 subnet /1-/30");
  }
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  if ((ip & mask) != (net & mask)) {
    return fail(ErrorCode::Invalid, address + " is not inside " + subnetCidr);
  }
  if (deviceIndex < 0 || deviceIndex > 255) {
    return fail(ErrorCode::Invalid,
                "device index " + std::to_string(deviceIndex) + " is not 0-255");
  }
  InterfaceAddressing out;
  out.ifindex = ifindex;
  out.address = address;
  out.prefixLength = prefix;
  out.subnet = ipv4(net & mask) + "/" + std::to_string(prefix);
  out.gateway = ipv4((net & mask) + 1);
  out.table = static_cast<std::uint32_t>(10000 + deviceIndex);
  out.rulePriority = out.table;
  out.configureAddress = configureAddress;
  out.policyRouting = policyRouting;
  return out;
}

Result<void> NlAddressManager::apply(const InterfaceAddressing& want) {
  auto sock = socket();
  if (!sock) return fail(sock.error());
  if (want.configureAddress) {
    auto local = parse(want.address + "/" + std::to_string(want.prefixLength));
    if (!local) return fail(local.error());
    rtnl_addr* addr = rtnl_addr_alloc();
    rtnl_addr_set_ifindex(addr, want.ifindex);
    rtnl_addr_set_family(addr, AF_INET);
    rtnl_addr_set_local(addr, local->get());
    rtnl_addr_set_prefixlen(addr, want.prefixLength);
    const int err = rtnl_addr_add(*sock, addr, 0);
    rtnl_addr_put(addr);
    if (err < 0 && err != -NLE_EXIST) {
      return fail(netlinkError("address " + want.address + "/" + std::to_string(want.prefixLength) +
                                   " on ifindex " + std::to_string(want.ifindex),
                               err));
    }
  }
  if (!want.policyRouting) return {};
  // The subnet first: it makes the gateway reachable inside the table.
  if (auto ok = addRoute(*sock, want, want.subnet, ""); !ok) return ok;
  if (auto ok = addRoute(*sock, want, "0.0.0.0/0", want.gateway); !ok) return ok;

  auto existing = rules(want.table);
  if (!existing) return fail(existing.error());
  const std::string source = want.address + "/32";
  bool present = false;
  for (const auto& r : *existing) {
    if (r.source == source && r.priority == want.rulePriority) {
      present = true;
      continue;
    }
    // A rule of this table for another address: the ENI's address changed.
    auto old = parse(r.source);
    if (!old) continue;
    rtnl_rule* rule = rtnl_rule_alloc();
    rtnl_rule_set_family(rule, AF_INET);
    rtnl_rule_set_table(rule, want.table);
    rtnl_rule_set_prio(rule, r.priority);
    rtnl_rule_set_src(rule, old->get());
    rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
    (void)rtnl_rule_delete(*sock, rule, 0);
    rtnl_rule_put(rule);
  }
  if (present) return {};
  auto src = parse(source);
  if (!src) return fail(src.error());
  rtnl_rule* rule = rtnl_rule_alloc();
  rtnl_rule_set_family(rule, AF_INET);
  rtnl_rule_set_table(rule, want.table);
  rtnl_rule_set_prio(rule, want.rulePriority);
  rtnl_rule_set_src(rule, src->get());
  rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
  const int err = rtnl_rule_add(*sock, rule, NLM_F_EXCL);
  rtnl_rule_put(rule);
  if (err < 0 && err != -NLE_EXIST) {
    return fail(netlinkError("rule from " + source + " lookup " + std::to_string(want.table), err));
  }
  return {};
}

Result<void> NlAddressManager::remove(const InterfaceAddressing& applied) {
  auto sock = socket();
  if (!sock) return fail(sock.error());
  if (applied.policyRouting) {
    auto existing = rules(applied.table);
    if (!existing) return fail(existing.error());
    for (const auto& r : *existing) {
      auto src = parse(r.source);
      if (!src) continue;
      rtnl_rule* rule = rtnl_rule_alloc();
      rtnl_rule_set_family(rule, AF_INET);
      rtnl_rule_set_table(rule, applied.table);
      rtnl_rule_set_prio(rule, r.priority);
      rtnl_rule_set_src(rule, src->get());
      rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
      const int err = rtnl_rule_delete(*sock, rule, 0);
      rtnl_rule_put(rule);
      if (err < 0 && err != -NLE_OBJ_NOTFOUND) return fail(netlinkError("delete rule", err));
    }
    nl_cache* raw = nullptr;
    if (int err = rtnl_route_alloc_cache(*sock, AF_INET, 0, &raw); err < 0)
      return fail(netlinkError("route dump", err));
    Cache cache(raw);
    std::vector<rtnl_route*> doomed;
    for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
      auto* route = reinterpret_cast<rtnl_route*>(o);
      if (rtnl_route_get_table(route) == applied.table) doomed.push_back(route);
    }
    for (rtnl_route* route : doomed) {
      const int err = rtnl_route_delete(*sock, route, 0);
      if (err < 0 && err != -NLE_OBJ_NOTFOUND) return fail(netlinkError("delete route", err));
    }
  }
  if (applied.configureAddress) {
    auto local = parse(applied.address + "/" + std::to_string(applied.prefixLength));
    if (!local) return fail(local.error());
    rtnl_addr* addr = rtnl_addr_alloc();
    rtnl_addr_set_ifindex(addr, applied.ifindex);
    rtnl_addr_set_family(addr, AF_INET);
    rtnl_addr_set_local(addr, local->get());
    rtnl_addr_set_prefixlen(addr, applied.prefixLength);
    const int err = rtnl_addr_delete(*sock, addr, 0);
    rtnl_addr_put(addr);
    if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV && err != -NLE_NOADDR) {
      return fail(netlinkError("delete address " + applied.address, err));
    }
  }
  return {};
}

Result<std::vector<std::string>> NlAddressManager::addresses(int ifindex) {
  auto sock = socket();
  if (!sock) return fail(sock.error());
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(*sock, &raw); err < 0)
    return fail(netlinkError("address dump", err));
  Cache cache(raw);
  std::vector<std::string> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* addr = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(addr) != ifindex || rtnl_addr_get_family(addr) != AF_INET) continue;
    out.push_back(format(rtnl_addr_get_local(addr)));
  }
  return out;
}

Result<std::vector<RouteInfo>> NlAddressManager::routes(std::uint32_t table) {
  auto sock = socket();
  if (!sock) return fail(sock.error());
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(*sock, AF_INET, 0, &raw); err < 0)
    return fail(netlinkError("route dump", err));
  Cache cache(raw);
  std::vector<RouteInfo> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* route = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(route) != table) continue;
    RouteInfo r;
    r.table = table;
    nl_addr* dst = rtnl_route_get_dst(route);
    r.destination = dst == nullptr || nl_addr_get_len(dst) == 0 ? "0.0.0.0/0" : format(dst);
    if (rtnl_route_get_nnexthops(route) > 0) {
      rtnl_nexthop* hop = rtnl_route_nexthop_n(route, 0);
      r.ifindex = rtnl_route_nh_get_ifindex(hop);
      nl_addr* gw = rtnl_route_nh_get_gateway(hop);
      if (gw != nullptr) {
        char buf[64];
        r.gateway = nl_addr2str(gw, buf, sizeof buf);
      }
    }
    out.push_back(r);
  }
  return out;
}

Result<std::vector<RuleInfo>> NlAddressManager::rules(std::uint32_t table) {
  auto sock = socket();
  if (!sock) return fail(sock.error());
  nl_cache* raw = nullptr;
  if (int err = rtnl_rule_alloc_cache(*sock, AF_INET, &raw); err < 0)
    return fail(netlinkError("rule dump", err));
  Cache cache(raw);
  std::vector<RuleInfo> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* rule = reinterpret_cast<rtnl_rule*>(o);
    if (rtnl_rule_get_table(rule) != table) continue;
    RuleInfo r;
    r.table = table;
    r.priority = rtnl_rule_get_prio(rule);
    r.source = format(rtnl_rule_get_src(rule));
    out.push_back(r);
  }
  return out;
}

NlAddressWatch::~NlAddressWatch() {
  if (socket_ != nullptr) {
    loop_.unwatchFd(nl_socket_get_fd(socket_));
    nl_socket_free(socket_);
  }
}

Result<void> NlAddressWatch::open() {
  if (socket_ != nullptr) return {};
  auto sock = openSocket(netnsPath_);
  if (!sock) return fail(sock.error());
  socket_ = sock->release();
  return {};
}

Result<void> NlAddressWatch::start(std::function<void(int ifindex)> onDeleted) {
  if (watching_) return {};
  if (auto opened = open(); !opened) return opened;
  onDeleted_ = std::move(onDeleted);
  nl_socket_disable_seq_check(socket_);
  nl_socket_modify_cb(socket_, NL_CB_VALID, NL_CB_CUSTOM, &NlAddressWatch::onMessage, this);
  // Joining route groups needs no capability: this works after the drop to --run-as-user.
  if (int err = nl_socket_add_memberships(socket_, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_RULE, 0);
      err < 0) {
    return fail(netlinkError("subscribe to address events", err));
  }
  nl_socket_set_nonblocking(socket_);
  auto watched =
      loop_.watchFd(nl_socket_get_fd(socket_), EPOLLIN, [this](std::uint32_t) { readEvents(); });
  if (!watched) return watched;
  watching_ = true;
  return {};
}

int NlAddressWatch::onMessage(nl_msg* msg, void* selfPtr) {
  auto* self = static_cast<NlAddressWatch*>(selfPtr);
  nlmsghdr* header = nlmsg_hdr(msg);
  if (header->nlmsg_type == RTM_DELRULE) {
    self->onDeleted_(0);
  } else if (header->nlmsg_type == RTM_DELADDR &&
             header->nlmsg_len >= NLMSG_LENGTH(sizeof(ifaddrmsg))) {
    const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(header));
    if (ifa->ifa_family == AF_INET) self->onDeleted_(static_cast<int>(ifa->ifa_index));
  }
  return NL_OK;
}

void NlAddressWatch::readEvents() {
  for (int i = 0; i < 1000; ++i) {  // bounded: the loop comes back for the rest
    const int err = nl_recvmsgs_default(socket_);
    if (err >= 0) continue;
    if (err == -NLE_NOMEM) onDeleted_(0);  // ENOBUFS: events were lost
    return;
  }
}

}  // namespace eni
