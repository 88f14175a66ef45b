#pragma once

#include <string>

#include "agent/base/error.h"

namespace eni::testing {

/// A named network namespace of the test's own making (/run/netns/<name>-<pid>), removed again on
/// destruction, links and all. Needs root (CAP_SYS_ADMIN), as `ip netns add` does; made with
/// unshare + a bind mount, not by running `ip`.
class TestNetns {
 public:
  [[nodiscard]] static Result<TestNetns> create(const std::string& name);
  TestNetns(TestNetns&& other) noexcept;
  TestNetns& operator=(TestNetns&&) = delete;
  ~TestNetns();

  const std::string& path() const { return path_; }

  /// Creates a veth pair inside the namespace: `name` gets `mac` ("02:..."), `peer` a kernel MAC.
  /// Both start administratively down.
  [[nodiscard]] Result<void> addVeth(const std::string& name, const std::string& mac,
                                     const std::string& peer, unsigned mtu = 0) const;
  /// Deletes a link (and so its veth peer) inside the namespace.
  [[nodiscard]] Result<void> deleteLink(const std::string& name) const;
  /// Sets a link administratively up, as the kernel's user would.
  [[nodiscard]] Result<void> setUp(const std::string& name) const;

  /// A namespace create() made earlier, possibly in another process (the demo's helper); it is
  /// removed on destruction like one made here.
  static TestNetns adopt(const std::string& path) { return TestNetns(path); }
  /// Keeps the namespace after this object is gone; returns its path.
  std::string release() {
    std::string path = std::move(path_);
    path_.clear();
    return path;
  }

 private:
  explicit TestNetns(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace eni::testing
