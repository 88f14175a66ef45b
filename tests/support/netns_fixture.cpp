#include "tests/support/netns_fixture.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include <netlink/addr.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/socket.h>

#include "netlink/netns.h"

namespace eni::testing {
namespace {

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;

Result<Sock> socketIn(const std::string& path) {
  auto guard = NetnsGuard::enter(path);
  if (!guard) return fail(guard.error());
  Sock sock(nl_socket_alloc());
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return fail(ErrorCode::Transient, std::string("netlink: ") + nl_geterror(err));
  }
  return sock;
}

}  // namespace

Result<TestNetns> TestNetns::create(const std::string& name) {
  mkdir("/run/netns", 0755);
  // The pid keeps two test runs on one machine (a developer's and a clean-clone check) apart.
  const std::string path = "/run/netns/" + name + "-" + std::to_string(getpid());
  umount2(path.c_str(), MNT_DETACH);
  unlink(path.c_str());
  const int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL, 0444);
  if (fd < 0) return fail(ErrorCode::Permission, "create " + path + ": " + std::strerror(errno));
  close(fd);
  // unshare() moves the calling thread; do it on a throwaway thread so ours stays put.
  std::string error;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      error = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root)";
      return;
    }
    const std::string self = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/ns/net";
    if (mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
      error = "bind mount " + self + ": " + std::strerror(errno);
    }
  }).join();
  if (!error.empty()) {
    unlink(path.c_str());
    return fail(ErrorCode::Permission, error);
  }
  // Bring loopback up, as `ip netns add` users expect.
  auto sock = socketIn(path);
  if (!sock) return fail(sock.error());
  rtnl_link* lo = nullptr;
  if (rtnl_link_get_kernel(sock->get(), 0, "lo", &lo) == 0) {
    rtnl_link* change = rtnl_link_alloc();
    rtnl_link_set_flags(change, IFF_UP);
    rtnl_link_change(sock->get(), lo, change, 0);
    rtnl_link_put(change);
    rtnl_link_put(lo);
  }
  return TestNetns(path);
}

TestNetns::TestNetns(TestNetns&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TestNetns::~TestNetns() {
  if (path_.empty()) return;
  // The namespace (and every veth in it) goes away once nothing holds it open.
  umount2(path_.c_str(), MNT_DETACH);
  unlink(path_.c_str());
}

Result<void> TestNetns::addVeth(const std::string& name, const std::string& mac,
                                const std::string& peer, unsigned mtu) const {
  auto sock = socketIn(path_);
  if (!sock) return fail(sock.error());
  rtnl_link* link = rtnl_link_veth_alloc();
  if (link == nullptr) return fail(ErrorCode::Internal, "rtnl_link_veth_alloc failed");
  rtnl_link_set_name(link, name.c_str());
  nl_addr* addr = nullptr;
  if (nl_addr_parse(mac.c_str(), AF_LLC, &addr) != 0) {
    rtnl_link_veth_release(link);
    return fail(ErrorCode::Invalid, "bad MAC " + mac);
  }
  rtnl_link_set_addr(link, addr);
  nl_addr_put(addr);
  if (mtu != 0) rtnl_link_set_mtu(link, mtu);
  rtnl_link* peerLink = rtnl_link_veth_get_peer(link);
  rtnl_link_set_name(peerLink, peer.c_str());
  rtnl_link_put(peerLink);
  const int err = rtnl_link_add(sock->get(), link, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_veth_release(link);
  if (err < 0) return fail(ErrorCode::Internal, "add veth " + name + ": " + nl_geterror(err));
  return {};
}

Result<void> TestNetns::deleteLink(const std::string& name) const {
  auto sock = socketIn(path_);
  if (!sock) return fail(sock.error());
  rtnl_link* link = rtnl_link_alloc();
  rtnl_link_set_name(link, name.c_str());
  const int err = rtnl_link_delete(sock->get(), link);
  rtnl_link_put(link);
  if (err < 0) return fail(ErrorCode::NotFound, "delete " + name + ": " + nl_geterror(err));
  return {};
}

Result<void> TestNetns::setUp(const std::string& name) const {
  auto sock = socketIn(path_);
  if (!sock) return fail(sock.error());
  rtnl_link* link = nullptr;
  if (int err = rtnl_link_get_kernel(sock->get(), 0, name.c_str(), &link); err < 0) {
    return fail(ErrorCode::NotFound, "link " + name + ": " + nl_geterror(err));
  }
  rtnl_link* change = rtnl_link_alloc();
  rtnl_link_set_flags(change, IFF_UP);
  const int err = rtnl_link_change(sock->get(), link, change, 0);
  rtnl_link_put(change);
  rtnl_link_put(link);
  if (err < 0) return fail(ErrorCode::Internal, "set " + name + " up: " + nl_geterror(err));
  return {};
}

}  // namespace eni::testing
