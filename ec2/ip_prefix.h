#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace eni {

/// An IPv4 or IPv6 address, or a CIDR prefix of either, for "does this pod IP fall inside this
/// delegated prefix" checks. Pure; no allocation on the lookup path.
class IpPrefix {
 public:
  /// "10.0.1.16/28", "2600:1f14::/80", or a bare address (a /32 or /128).
  static std::optional<IpPrefix> parse(std::string_view text);
  bool contains(const IpPrefix& address) const;
  bool isV6() const { return v6_; }

 private:
  std::array<std::uint8_t, 16> bytes_{};
  int bits_ = 0;
  bool v6_ = false;
};

}  // namespace eni
