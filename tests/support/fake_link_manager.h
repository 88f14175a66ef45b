#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "netlink/link_manager.h"

namespace eni::testing {

/// The kernel's side of the links for unit tests: every configure request is recorded, none
/// fails, and no event comes back on its own (the test feeds LinkReconciler::onEvent).
class FakeLinkManager final : public LinkManager {
 public:
  struct Request {
    int ifindex = 0;
    std::uint32_t mtu = 0;
    bool up = false;
  };
  Result<void> start(std::function<void(const LinkEvent&)>) override { return {}; }
  Result<void> configure(int ifindex, std::uint32_t mtu, bool up) override {
    requests.push_back({ifindex, mtu, up});
    return {};
  }
  std::uint64_t dumps() const override { return 0; }

  std::vector<Request> requests;
};

}  // namespace eni::testing
