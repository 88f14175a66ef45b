// Watch-stream decoding throughput, in bytes per second. Figures only; nothing passes or fails.
#include <benchmark/benchmark.h>

#include <string>

#include "agent/kube/watch_decoder.h"

namespace {

std::string podEvents(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out +=
        R"({"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod-)" +
        std::to_string(i) + R"(","namespace":"default","uid":"6a1c2e0e-0000-4000-8000-)" +
        std::to_string(100000000000 + i) + R"(","resourceVersion":")" + std::to_string(1000 + i) +
        R"(","annotations":{"eni-tagger.io/tags":"{\"Team\":\"Platform\",\"CostCenter\":\"1234\"}"}},)"
        R"("spec":{"nodeName":"ip-10-0-1-23","containers":[{"name":"app","image":"app:1"}]},)"
        R"("status":{"phase":"Running","podIP":"10.0.1.)" +
        std::to_string(i % 250) +
        R"("}}})"
        "\n";
  }
  return out;
}

void BM_WatchDecode(benchmark::State& state) {
  const std::string stream = podEvents(110);
  const std::size_t chunk = static_cast<std::size_t>(state.range(0));
  std::size_t events = 0;
  for (auto _ : state) {
    eni::WatchStreamDecoder decoder;
    for (std::size_t at = 0; at < stream.size(); at += chunk) {
      auto fed = decoder.feed(std::string_view(stream).substr(at, chunk),
                              [&](eni::WatchEvent) { ++events; });
      benchmark::DoNotOptimize(fed);
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.counters["events"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WatchDecode)->Arg(1400)->Arg(16384);

}  // namespace

BENCHMARK_MAIN();
