// What a tagger pass costs per ENI in the node state: the encode of the eni-agent.io/state
// annotation before its patch, and the decode of the agent's own Node watch event that echoes
// it back. Both run once per pass with the whole state, so over a workload of one pod after
// another they grow with the square of the pods; the figures show their slope. Nothing passes or
// fails on time.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "agent/base/json.h"
#include "agent/kube/watch_decoder.h"
#include "agent/state/node_state.h"

namespace {

// n ENIs, one pod each, three tags: bench/run's branch workload after n pods.
eni::NodeState stateOf(int n) {
  eni::NodeState state;
  state.instanceId = "i-0123456789abcdef0";
  for (int i = 0; i < n; ++i) {
    const std::string id = "eni-" + std::to_string(100000000000000000LL + i);
    eni::EniRecord& e = state.enis[id];
    e.subnet = "subnet-0123456789abcdef0";
    e.tags = {{"Team", "Platform"}, {"CostCenter", "1234"}, {"App", "checkout"}};
    e.hash = "5f1c0d3e9a7b2c4d";
    e.pods["bench/branch-" + std::to_string(i)] = {
        "6a1c2e0e-0000-4000-8000-" + std::to_string(100000000000 + i),
        "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250)};
  }
  return state;
}

// The Node MODIFIED event the API server sends after the state patch, as one watch line.
std::string nodeEvent(const std::string& annotation) {
  Json::Value event;
  event["type"] = "MODIFIED";
  Json::Value& node = event["object"];
  node["kind"] = "Node";
  node["apiVersion"] = "v1";
  node["metadata"]["name"] = "ip-10-0-1-23";
  node["metadata"]["resourceVersion"] = "4711";
  node["metadata"]["labels"]["eni-agent.io/enabled"] = "true";
  node["metadata"]["annotations"][eni::kNodeStateAnnotation] = annotation;
  node["status"]["addresses"][0]["type"] = "InternalIP";
  node["status"]["addresses"][0]["address"] = "10.0.1.23";
  return eni::toJson(event) + "\n";
}

void BM_EncodeNodeState(benchmark::State& state) {
  const eni::NodeState s = stateOf(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto text = eni::encodeNodeState(s);
    bytes = text ? text->size() : 0;
    benchmark::DoNotOptimize(text);
  }
  state.counters["annotation_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_EncodeNodeState)->Arg(8)->Arg(110)->Arg(250);

// The annotation quoted as the node-state patch's body carries it (Go's escapes: the member the
// echo's decoding looks for is the same text).
void BM_QuoteNodeState(benchmark::State& state) {
  const std::string annotation = *eni::encodeNodeState(stateOf(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    std::string quoted;
    eni::appendJsonQuoted(quoted, annotation, eni::JsonQuoting::AsGo);
    benchmark::DoNotOptimize(quoted);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * annotation.size()));
}
BENCHMARK(BM_QuoteNodeState)->Arg(8)->Arg(110)->Arg(250);

// range(1) == 1: the agent remembered the annotation it patched (KnownAnnotations), as it does.
void BM_DecodeOwnNodeEcho(benchmark::State& state) {
  const std::string annotation = *eni::encodeNodeState(stateOf(static_cast<int>(state.range(0))));
  const std::string line = nodeEvent(annotation);
  eni::KnownAnnotations known;
  if (state.range(1) == 1) known.remember(eni::kNodeStateAnnotation, annotation);
  for (auto _ : state) {
    eni::WatchStreamDecoder decoder;
    decoder.reuse(&known);
    auto fed = decoder.feed(line, [](eni::WatchEvent e) { benchmark::DoNotOptimize(e); });
    benchmark::DoNotOptimize(fed);
  }
  state.counters["event_bytes"] = static_cast<double>(line.size());
  state.counters["reused"] = static_cast<double>(known.reused() > 0);
}
BENCHMARK(BM_DecodeOwnNodeEcho)->ArgsProduct({{8, 110, 250}, {0, 1}});

}  // namespace
