#include "netlink/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace eni {

Result<NetnsGuard> NetnsGuard::enter(const std::string& path) {
  if (path.empty()) return NetnsGuard(-1);
  const int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) {
    return fail(ErrorCode::Internal,
                std::string("cannot open own network namespace: ") + std::strerror(errno));
  }
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    const int err = errno;
    close(original);
    return fail(err == ENOENT ? ErrorCode::NotFound : ErrorCode::Permission,
                "network namespace " + path + ": " + std::strerror(err));
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    const int err = errno;
    close(target);
    close(original);
    return fail(ErrorCode::Permission, "cannot enter network namespace " + path + ": " +
                                           std::strerror(err) + " (needs CAP_SYS_ADMIN)");
  }
  close(target);
  return NetnsGuard(original);
}

NetnsGuard::NetnsGuard(NetnsGuard&& other) noexcept : originalFd_(other.originalFd_) {
  other.originalFd_ = -1;
}

NetnsGuard::~NetnsGuard() {
  if (originalFd_ < 0) return;
  // Staying in the other namespace would send the agent's HTTP traffic there: abort instead.
  if (setns(originalFd_, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "eni-agent: fatal: cannot return to own network namespace: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  close(originalFd_);
}

}  // namespace eni
