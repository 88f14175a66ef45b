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

/// The kernel's links: an initial dump, then RTNLGRP_LINK events, and the changes the agent makes
/// (MTU and up). Errors are typed: NotFound (no such device), Permission (needs CAP_NET_ADMIN),
/// Invalid (e.g. an MTU the device refuses), Transient (netlink I/O). Loop thread only.
class LinkManager {
 public:
  virtual ~LinkManager() = default;
  /// Dumps every link as a New event, then delivers events as the kernel sends them.
  [[nodiscard]] virtual Result<void> start(std::function<void(const LinkEvent&)> onEvent) = 0;
  /// One RTM_NEWLINK request: the MTU (0: left alone) and, with `up`, the link administratively
  /// up, both at once.
  [[nodiscard]] virtual Result<void> configure(int ifindex, std::uint32_t mtu, bool up) = 0;
  [[nodiscard]] Result<void> setMtu(int ifindex, std::uint32_t mtu) {
    return configure(ifindex, mtu, false);
  }
  /// Sets the link administratively up.
  [[nodiscard]] Result<void> setUp(int ifindex) { return configure(ifindex, 0, true); }
  /// Full dumps so far: one at start, one more after each ENOBUFS overrun.
  virtual std::uint64_t dumps() const = 0;
};

}  // namespace eni
