#include "netlink/link_dump.h"

#include <net/if.h>

#include <cstdio>
#include <memory>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include "netlink/netns.h"

namespace eni {
namespace {

struct SocketDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};

}  // namespace

bool LinkInfo::adminUp() const { return (flags & IFF_UP) != 0; }

std::string formatMac(const unsigned char* bytes, std::size_t length) {
  std::string out;
  char part[4];
  for (std::size_t i = 0; i < length; ++i) {
    std::snprintf(part, sizeof part, i == 0 ? "%02x" : ":%02x", bytes[i]);
    out += part;
  }
  return out;
}

LinkInfo linkInfoOf(rtnl_link* link) {
  LinkInfo info;
  info.ifindex = rtnl_link_get_ifindex(link);
  if (const char* name = rtnl_link_get_name(link)) info.name = name;
  if (nl_addr* addr = rtnl_link_get_addr(link); addr != nullptr && nl_addr_get_len(addr) == 6) {
    info.mac = formatMac(static_cast<const unsigned char*>(nl_addr_get_binary_addr(addr)), 6);
  }
  info.flags = rtnl_link_get_flags(link);
  info.mtu = rtnl_link_get_mtu(link);
  char state[32];
  info.operstate = rtnl_link_operstate2str(rtnl_link_get_operstate(link), state, sizeof state);
  return info;
}

Result<std::vector<LinkInfo>> dumpLinks(const std::string& netnsPath) {
  std::unique_ptr<nl_sock, SocketDeleter> sock;
  {
    auto guard = NetnsGuard::enter(netnsPath);
    if (!guard) return fail(guard.error());
    sock.reset(nl_socket_alloc());
    if (!sock) return fail(ErrorCode::Internal, "nl_socket_alloc failed");
    if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
      return fail(ErrorCode::Transient, std::string("netlink connect: ") + nl_geterror(err));
    }
  }
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &raw); err < 0) {
    return fail(ErrorCode::Transient, std::string("netlink link dump: ") + nl_geterror(err));
  }
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  std::vector<LinkInfo> links;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
       obj = nl_cache_get_next(obj)) {
    links.push_back(linkInfoOf(reinterpret_cast<rtnl_link*>(obj)));
  }
  return links;
}

}  // namespace eni
