#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/base/error.h"

struct rtnl_link;  // libnl

namespace eni {

/// What the kernel says about one link.
struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::string mac;          // "02:aa:bb:cc:dd:ee", lower case
  std::uint32_t flags = 0;  // IFF_UP, IFF_RUNNING, ...
  std::uint32_t mtu = 0;
  std::string operstate;  // "up", "down", "unknown", ...
  bool adminUp() const;
};

/// One RTM_GETLINK dump over a fresh libnl route socket, in the namespace at `netnsPath`
/// (empty: the caller's own). Errors are typed: Permission, NotFound (no such namespace),
/// Transient (netlink I/O).
[[nodiscard]] Result<std::vector<LinkInfo>> dumpLinks(const std::string& netnsPath = "");

/// A libnl link object as LinkInfo (libnl types stay inside netlink/).
LinkInfo linkInfoOf(::rtnl_link* link);

/// "02:aa:bb:cc:dd:ee" from raw bytes.
std::string formatMac(const unsigned char* bytes, std::size_t length);

}  // namespace eni
