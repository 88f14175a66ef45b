#include "netlink/nl_link_manager.h"

#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/epoll.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/socket.h>

#include "netlink/netns.h"
#include "netlink/nl_error.h"

namespace eni {

NlLinkManager::NlLinkManager(EventLoop& loop, std::string netnsPath)
    : loop_(loop), netnsPath_(std::move(netnsPath)) {}

NlLinkManager::~NlLinkManager() {
  if (events_ != nullptr) {
    loop_.unwatchFd(nl_socket_get_fd(events_));
    nl_socket_free(events_);
  }
  if (requests_ != nullptr) nl_socket_free(requests_);
}

Result<void> NlLinkManager::open() {
  if (requests_ != nullptr) return {};
  auto guard = NetnsGuard::enter(netnsPath_);
  if (!guard) return fail(guard.error());
  nl_sock* events = nl_socket_alloc();
  nl_sock* requests = nl_socket_alloc();
  auto failed = [&](Error error) {
    if (events != nullptr) nl_socket_free(events);
    if (requests != nullptr) nl_socket_free(requests);
    return fail(std::move(error));
  };
  if (events == nullptr || requests == nullptr)
    return failed(Error(ErrorCode::Internal, "nl_socket_alloc failed"));
  if (int err = nl_connect(events, NETLINK_ROUTE); err < 0)
    return failed(netlinkError("netlink connect", err));
  if (int err = nl_connect(requests, NETLINK_ROUTE); err < 0)
    return failed(netlinkError("netlink connect", err));
  events_ = events;
  requests_ = requests;
  return {};
}

Result<void> NlLinkManager::start(std::function<void(const LinkEvent&)> onEvent) {
  onEvent_ = std::move(onEvent);
  if (auto opened = open(); !opened) return opened;
  nl_socket_disable_seq_check(events_);
  nl_socket_modify_cb(events_, NL_CB_VALID, NL_CB_CUSTOM, &NlLinkManager::onMessage, this);
  // Joining a route group needs no capability, so this works after the drop to --run-as-user
  // and the socket stays bound to the namespace it was opened in.
  if (int err = nl_socket_add_membership(events_, RTNLGRP_LINK); err < 0) {
    return fail(netlinkError("subscribe to link events", err));
  }
  nl_socket_set_nonblocking(events_);
  // A burst of new interfaces (and our own changes echoing back) must not overrun the socket;
  // an overrun costs a full dump.
  nl_socket_set_buffer_size(events_, 4 << 20, 0);
  // Subscribed before the dump, so nothing falls between the two; handling is level-triggered,
  // so seeing a link twice is harmless.
  auto watched =
      loop_.watchFd(nl_socket_get_fd(events_), EPOLLIN, [this](std::uint32_t) { readEvents(); });
  if (!watched) return watched;
  return dump();
}

Result<void> NlLinkManager::dump() {
  ++dumps_;
  nl_cache* cache = nullptr;
  if (int err = rtnl_link_alloc_cache(requests_, AF_UNSPEC, &cache); err < 0) {
    return fail(netlinkError("link dump", err));
  }
  for (nl_object* obj = nl_cache_get_first(cache); obj != nullptr; obj = nl_cache_get_next(obj)) {
    onEvent_(LinkEvent{LinkEventType::New, linkInfoOf(reinterpret_cast<rtnl_link*>(obj))});
  }
  nl_cache_free(cache);
  return {};
}

int NlLinkManager::onMessage(nl_msg* msg, void* selfPtr) {
  auto* self = static_cast<NlLinkManager*>(selfPtr);
  const int type = nlmsg_hdr(msg)->nlmsg_type;
  if (type != RTM_NEWLINK && type != RTM_DELLINK) return NL_OK;
  std::pair<NlLinkManager*, int> context{self, type};
  nl_msg_parse(
      msg,
      [](nl_object* obj, void* arg) {
        auto* ctx = static_cast<std::pair<NlLinkManager*, int>*>(arg);
        const auto kind = ctx->second == RTM_DELLINK ? LinkEventType::Deleted : LinkEventType::New;
        ctx->first->onEvent_(LinkEvent{kind, linkInfoOf(reinterpret_cast<rtnl_link*>(obj))});
      },
      &context);
  return NL_OK;
}

void NlLinkManager::readEvents() {
  while (true) {
    const int err = nl_recvmsgs_default(events_);
    if (err >= 0) continue;
    if (err == -NLE_AGAIN) return;
    if (err == -NLE_NOMEM) {
      // ENOBUFS: the kernel dropped events; only a new dump tells the current state.
      ++overruns_;
      (void)dump();
      return;
    }
    return;
  }
}

Result<void> NlLinkManager::configure(int ifindex, std::uint32_t mtu, bool up) {
  rtnl_link* orig = rtnl_link_alloc();
  rtnl_link* changes = rtnl_link_alloc();
  rtnl_link_set_ifindex(orig, ifindex);
  if (mtu != 0) rtnl_link_set_mtu(changes, mtu);
  if (up) rtnl_link_set_flags(changes, IFF_UP);
  const int err = rtnl_link_change(requests_, orig, changes, 0);
  rtnl_link_put(changes);
  rtnl_link_put(orig);
  if (err < 0) {
    const std::string what = mtu != 0 && up ? "set mtu " + std::to_string(mtu) + " and up"
                             : mtu != 0     ? "set mtu " + std::to_string(mtu)
                                            : std::string("set up");
    return fail(netlinkError(what + " on ifindex " + std::to_string(ifindex), err));
  }
  return {};
}

}  // namespace eni
