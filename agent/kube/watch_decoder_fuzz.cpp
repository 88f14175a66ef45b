// libFuzzer target: the watch-stream decoder must give an event or a clear error for any input,
// in any chunking, and never crash. Built only with clang (ENI_AGENT_HAVE_LIBFUZZER).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/kube/watch_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks a chunk size, so split points are fuzzed too.
  const std::size_t chunk = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  eni::WatchStreamDecoder decoder;
  std::size_t events = 0;
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    auto fed = decoder.feed(input.substr(at, chunk),
                            [&](eni::WatchEvent e) { events += e.object.isObject() ? 1 : 0; });
    if (!fed) {
      if (fed.error().message.empty()) __builtin_trap();  // every error says why
      break;
    }
  }
  return 0;
}
