// libFuzzer target: IMDS list answers, the interface map read from them (every path answers the
// input; a path whose name the input contains answers 404, as a stale key does) and the IP/prefix
// lookup built on them never crash.
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
  auto read = eni::readInterfaceMap([&text](const std::string& path) -> eni::Result<std::string> {
    const auto slash = path.find_last_of('/', path.size() - 2);
    const std::string key = path.substr(slash == std::string::npos ? 0 : slash + 1);
    if (!key.empty() && text.find("404:" + key) != std::string::npos)
      return eni::fail(eni::ErrorCode::NotFound, "404");
    return text;
  });
  if (read) {
    for (const auto& i : read->interfaces) {
      if (read->skippedMacs.count(i.mac) != 0) __builtin_trap();  // skipped or kept, not both
    }
  }
  return 0;
}
