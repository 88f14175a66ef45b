// libFuzzer target: IMDS list answers and the IP/prefix lookup built on them never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ec2/imds.h"
#include "ec2/ip_prefix.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  eni::InterfaceMap map;
  eni::ImdsInterface iface;
  iface.localIpv4s = eni::splitImdsList(text);
  iface.ipv4Prefixes = iface.localIpv4s;
  iface.ipv6Prefixes = iface.localIpv4s;
  map.interfaces.push_back(iface);
  for (const auto& entry : iface.localIpv4s) {
    (void)eni::IpPrefix::parse(entry);
    if (map.findByIp(entry) == nullptr && eni::IpPrefix::parse(entry) &&
        entry.find('/') == std::string::npos) {
      __builtin_trap();  // an address listed in local-ipv4s must be found
    }
  }
  return 0;
}
