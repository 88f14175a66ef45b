#include "ec2/ip_prefix.h"

#include <arpa/inet.h>

#include <charconv>

namespace eni {

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  IpPrefix p;
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  p.v6_ = address.find(':') != std::string::npos;
  if (inet_pton(p.v6_ ? AF_INET6 : AF_INET, address.c_str(), p.bytes_.data()) != 1) {
    return std::nullopt;
  }
  const int maxBits = p.v6_ ? 128 : 32;
  p.bits_ = maxBits;
  if (slash != std::string_view::npos) {
    const std::string_view len = text.substr(slash + 1);
    int bits = -1;
    auto [ptr, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
    if (ec != std::errc() || ptr != len.data() + len.size() || bits < 0 || bits > maxBits) {
      return std::nullopt;
    }
    p.bits_ = bits;
  }
  return p;
}

bool IpPrefix::contains(const IpPrefix& address) const {
  if (v6_ != address.v6_) return false;
  int remaining = bits_;
  for (std::size_t i = 0; remaining > 0; ++i, remaining -= 8) {
    const std::uint8_t mask =
        remaining >= 8 ? 0xFF : static_cast<std::uint8_t>(0xFF << (8 - remaining));
    if ((bytes_[i] & mask) != (address.bytes_[i] & mask)) return false;
  }
  return true;
}

}  // namespace eni
