// Pod IP -> ENI in the IMDS interface map, as the tagger's resolver does it: addresses first,
// then delegated IPv4/IPv6 prefixes. Figures only; nothing passes or fails on time.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ec2/imds.h"

namespace {

// A node with `enis` interfaces. Secondary-IP mode: 30 addresses each. Prefix mode: the primary
// address plus 8 delegated /28s and one IPv6 /80 each.
eni::InterfaceMap nodeMap(int enis, bool prefixes) {
  eni::InterfaceMap map;
  for (int e = 0; e < enis; ++e) {
    eni::ImdsInterface i;
    i.mac = "02:00:00:00:00:" + std::to_string(10 + e);
    i.interfaceId = "eni-0000000000000" + std::to_string(1000 + e);
    i.deviceNumber = e;
    i.subnetId = "subnet-0123456789abcdef0";
    if (prefixes) {
      i.localIpv4s.push_back("10.0." + std::to_string(e) + ".5");
      for (int p = 0; p < 8; ++p) {
        i.ipv4Prefixes.push_back("10.0." + std::to_string(e) + "." + std::to_string(16 * (p + 1)) +
                                 "/28");
      }
      i.ipv6Prefixes.push_back("2600:1f14:abc:" + std::to_string(e) + "::/80");
    } else {
      for (int a = 0; a < 30; ++a) {
        i.localIpv4s.push_back("10.0." + std::to_string(e) + "." + std::to_string(10 + a));
      }
    }
    map.interfaces.push_back(std::move(i));
  }
  return map;
}

void BM_FindByIp(benchmark::State& state, bool prefixes, const std::string& ip) {
  const auto map = nodeMap(static_cast<int>(state.range(0)), prefixes);
  for (auto _ : state) {
    const auto* found = map.findByIp(ip);
    if (found == nullptr) state.SkipWithError("no interface holds the IP");
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());  // lookups per second
}
// The last address of the last ENI: a full scan of the addresses.
BENCHMARK_CAPTURE(BM_FindByIp, secondary_ip_worst, false, "10.0.14.39")->Arg(15);
// Inside the last /28 of the last ENI: every address, then every prefix parsed and checked.
BENCHMARK_CAPTURE(BM_FindByIp, ipv4_prefix_worst, true, "10.0.14.140")->Arg(15);
BENCHMARK_CAPTURE(BM_FindByIp, ipv6_prefix_worst, true, "2600:1f14:abc:14::42")->Arg(15);
BENCHMARK_CAPTURE(BM_FindByIp, ipv4_prefix_first, true, "10.0.0.20")->Arg(15);

}  // namespace

namespace {

// The resolver's IMDS step for a pass of 110 pods on a prefix-delegation node: 110 lookups.
void BM_ResolvePass110(benchmark::State& state) {
  const auto map = nodeMap(15, true);
  std::vector<std::string> podIps;
  for (int p = 0; p < 110; ++p) {
    podIps.push_back("10.0." + std::to_string(p % 15) + "." + std::to_string(16 + p % 128));
  }
  for (auto _ : state) {
    int found = 0;
    for (const auto& ip : podIps) found += map.findByIp(ip) != nullptr;
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations() * 110);  // pods per second
}
BENCHMARK(BM_ResolvePass110);

}  // namespace
