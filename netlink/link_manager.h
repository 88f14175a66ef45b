#pragma once

#include <cstdint>
#include <functional>

#include "agent/base/error.h"
#include "netlink/link_dump.h"

namespace eni {

enum class LinkEventType { New, Deleted };

struct LinkEvent {
  LinkEventType type = LinkEventType::New;
  LinkInfo link;
};

/// The kernel's links: an initial dump, then RTNLGRP_LINK events, and the two changes the agent
/// makes. Errors are typed: NotFound (no such device), Permission (needs CAP_NET_ADMIN), Invalid
/// (e.g. an MTU the device refuses), Transient (netlink I/O). Loop thread only.
class LinkManager {
 public:
  virtual ~LinkManager() = default;
  /// Dumps every link as a New event, then delivers events as the kernel sends them.
  [[nodiscard]] virtual Result<void> start(std::function<void(const LinkEvent&)> onEvent) = 0;
  [[nodiscard]] virtual Result<void> setMtu(int ifindex, std::uint32_t mtu) = 0;
  /// Sets the link administratively up.
  [[nodiscard]] virtual Result<void> setUp(int ifindex) = 0;
  /// Full dumps so far: one at start, one more after each ENOBUFS overrun.
  virtual std::uint64_t dumps() const = 0;
};

}  // namespace eni
