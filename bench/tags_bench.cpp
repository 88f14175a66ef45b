// The tagger's per-pod CPU work: annotation parse + validate, the ownership hash and the tag diff.
// Figures only; nothing passes or fails on time.
#include <benchmark/benchmark.h>

#include <string>

#include "agent/eni/tags.h"

namespace {

std::string jsonAnnotation(int tags) {
  std::string out = "{";
  for (int i = 0; i < tags; ++i) {
    if (i > 0) out += ",";
    out += "\"Key" + std::to_string(i) + "\":\"value-" + std::to_string(i * 7919) + "\"";
  }
  return out + "}";
}

std::string pairAnnotation(int tags) {
  std::string out;
  for (int i = 0; i < tags; ++i) {
    if (i > 0) out += ",";
    out += "Key" + std::to_string(i) + "=value-" + std::to_string(i * 7919);
  }
  return out;
}

// Parse + validate + hash: what the tagger does for a pod whose annotation changed.
void BM_ParseValidateHash(benchmark::State& state, bool json) {
  const int tags = static_cast<int>(state.range(0));
  const std::string value = json ? jsonAnnotation(tags) : pairAnnotation(tags);
  for (auto _ : state) {
    auto parsed = eni::parseTagAnnotation(value);
    if (!parsed) {
      state.SkipWithError("the annotation did not parse");
      break;
    }
    auto hash = eni::tagHash(*parsed);
    benchmark::DoNotOptimize(hash);
  }
  state.SetItemsProcessed(state.iterations());  // annotations per second
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * value.size()));
}
// 49: the most an annotation may carry (EC2's 50 per ENI less the hash tag).
BENCHMARK_CAPTURE(BM_ParseValidateHash, json, true)->Arg(2)->Arg(10)->Arg(49);
BENCHMARK_CAPTURE(BM_ParseValidateHash, pairs, false)->Arg(2)->Arg(10)->Arg(49);

// With --tag-namespace=pod-namespace, every key gets a prefix before validation.
void BM_ParseNamespaced(benchmark::State& state) {
  const std::string value = jsonAnnotation(10);
  const eni::TagNamespace ns{"pod-namespace"};
  for (auto _ : state) {
    auto parsed = eni::parseTagAnnotation(value, ns, "payments");
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseNamespaced);

void BM_TagHash(benchmark::State& state) {
  auto tags = eni::parseTagAnnotation(jsonAnnotation(static_cast<int>(state.range(0))));
  if (!tags) {
    state.SkipWithError("the annotation did not parse");
    return;
  }
  for (auto _ : state) {
    auto hash = eni::tagHash(*tags);
    benchmark::DoNotOptimize(hash);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TagHash)->Arg(2)->Arg(49);

// The minimal diff between the applied and the desired set: half the keys kept, a quarter
// changed, a quarter replaced by new keys.
void BM_DiffTags(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  eni::TagSet applied, desired;
  for (int i = 0; i < n; ++i) {
    applied["Key" + std::to_string(i)] = "v" + std::to_string(i);
    if (i < n / 2) {
      desired["Key" + std::to_string(i)] = "v" + std::to_string(i);
    } else if (i < 3 * n / 4) {
      desired["Key" + std::to_string(i)] = "changed" + std::to_string(i);
    } else {
      desired["New" + std::to_string(i)] = "v" + std::to_string(i);
    }
  }
  for (auto _ : state) {
    auto diff = eni::diffTags(applied, desired);
    benchmark::DoNotOptimize(diff);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DiffTags)->Arg(4)->Arg(50);

// The same annotation again: the diff is empty, which is what makes re-applies free.
void BM_DiffTagsUnchanged(benchmark::State& state) {
  auto tags = eni::parseTagAnnotation(jsonAnnotation(10));
  for (auto _ : state) {
    auto diff = eni::diffTags(*tags, *tags);
    benchmark::DoNotOptimize(diff);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DiffTagsUnchanged);

}  // namespace
