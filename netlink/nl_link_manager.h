#pragma once

#include <string>

#include "agent/base/event_loop.h"
#include "netlink/link_manager.h"

struct nl_sock;
struct nl_msg;

namespace eni {

/// LinkManager over libnl-route-3. Two sockets, both opened inside `netnsPath` when it is set (the
/// thread enters the namespace with setns and comes back, so the agent's HTTP stays in its own
/// namespace): a non-blocking event socket subscribed to RTNLGRP_LINK on the event loop, and a
/// request socket for dumps and changes, which are synchronous kernel calls.
class NlLinkManager final : public LinkManager {
 public:
  NlLinkManager(EventLoop& loop, std::string netnsPath);
  ~NlLinkManager() override;

  /// Opens both sockets now (inside `netnsPath`, which needs CAP_SYS_ADMIN) without subscribing
  /// to anything, so that start() needs no more than CAP_NET_ADMIN later: the agent opens them
  /// before it drops to --run-as-user. start() opens them itself when this was not called.
  /// Idempotent. Errors are typed like dumpLinks's.
  [[nodiscard]] Result<void> open();
  Result<void> start(std::function<void(const LinkEvent&)> onEvent) override;
  Result<void> configure(int ifindex, std::uint32_t mtu, bool up) override;
  std::uint64_t dumps() const override { return dumps_; }
  /// ENOBUFS overruns of the event socket, each answered by a dump.
  std::uint64_t overruns() const { return overruns_; }

 private:
  static int onMessage(nl_msg* msg, void* self);
  void readEvents();
  Result<void> dump();

  EventLoop& loop_;
  std::string netnsPath_;
  nl_sock* events_ = nullptr;
  nl_sock* requests_ = nullptr;
  std::function<void(const LinkEvent&)> onEvent_;
  std::uint64_t dumps_ = 0;
  std::uint64_t overruns_ = 0;
};

}  // namespace eni
