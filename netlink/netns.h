#pragma once

#include <string>

#include "agent/base/error.h"

namespace eni {

/// Runs the current thread inside another network namespace for the guard's lifetime, then
/// returns it to the namespace it came from. Sockets opened inside stay bound to that namespace
/// after the guard is gone, which is how the agent manages another namespace's links while its
/// HTTP traffic stays in its own. Entering needs CAP_SYS_ADMIN.
class NetnsGuard {
 public:
  /// Enters `path` (e.g. /run/netns/test1). An empty path stays where we are.
  [[nodiscard]] static Result<NetnsGuard> enter(const std::string& path);
  NetnsGuard(NetnsGuard&& other) noexcept;
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  NetnsGuard(const NetnsGuard&) = delete;
  ~NetnsGuard();

 private:
  explicit NetnsGuard(int originalFd) : originalFd_(originalFd) {}
  int originalFd_ = -1;
};

}  // namespace eni
