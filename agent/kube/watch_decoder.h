#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "agent/base/error.h"
#include "agent/kube/kube_api.h"

namespace eni {

/// Decodes a Kubernetes watch stream (one JSON event per line) incrementally, in whatever chunks
/// the network delivers. ERROR events become errors: code 410 gives Gone, others Transient.
/// A malformed line gives Internal with the reason. After an error the decoder stays failed.
/// Not thread-safe.
class WatchStreamDecoder {
 public:
  /// The longest event line buffered. One event carries one object, and etcd refuses objects
  /// over 1.5 MiB by default, so 16 MiB leaves room for any configured limit while a stream that
  /// never ends its line cannot grow without bound.
  static constexpr std::size_t kMaxLineBytes = 16u << 20;

  /// Decodes every complete line in `chunk` (plus what was buffered) and emits its event.
  /// Returns the first error; events before it were emitted.
  [[nodiscard]] Result<void> feed(std::string_view chunk,
                                  const std::function<void(WatchEvent)>& emit);
  /// Decodes one line; exposed for the fuzzer and the tests.
  [[nodiscard]] static Result<WatchEvent> decodeLine(std::string_view line);
  bool failed() const { return failed_; }
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::string partial_;
  bool failed_ = false;
};

}  // namespace eni
