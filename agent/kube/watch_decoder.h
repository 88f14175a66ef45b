#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "agent/base/error.h"
#include "agent/kube/kube_api.h"

namespace eni {

/// Long annotation values this agent patched onto an object it also watches (its node state on its
/// own Node): the watch brings each one back in the object's next events, tens of KiB that would
/// be decoded character by character every time. A line that carries one verbatim, as the API
/// server writes it, is parsed with a short stand-in in its place (random per instance), and the
/// remembered value is put back when the stand-in is found where the value belongs; anything else
/// (another value, another escaping, the pair elsewhere) is decoded as usual. Keeps the last two
/// of each key. Not thread-safe.
class KnownAnnotations {
 public:
  /// Values kept: the echo of a patch can come after the next patch went out.
  static constexpr std::size_t kKept = 2;
  /// Values kept in all, whatever the keys.
  static constexpr std::size_t kMaxKept = 8;
  /// Shorter values are decoded as usual: the search would cost more than it saves.
  static constexpr std::size_t kMinBytes = 512;

  KnownAnnotations();

  /// Keeps `value` (when it is long enough) and returns `"key":"value"` as the API server writes
  /// it, which is also a JSON member for a request's body: one quoting of the value, not two.
  std::string remember(const std::string& key, const std::string& value);
  bool empty() const { return known_.empty(); }
  /// `line` parsed; the values remembered here that it carries (the newest of each key) are put
  /// back instead of decoded.
  [[nodiscard]] Result<Json::Value> parse(std::string_view line);
  /// Events whose value was put back instead of decoded.
  std::uint64_t reused() const { return reused_; }

  /// `value` quoted as the API server's JSON encoder writes it (Go's encoding/json: `<`, `>`, `&`,
  /// U+2028 and U+2029 as \u escapes, other non-ASCII as is); exposed for the tests.
  static std::string quoteAsApiServer(std::string_view value);

 private:
  struct Known {
    std::string key;
    std::string needle;     // "key":"value" as the line carries it
    std::size_t valueAt{};  // where the quoted value starts in it
    std::string value;
  };
  /// Where `k`'s member starts in `line`, or npos.
  static std::size_t find(std::string_view line, const Known& k);

  std::deque<Known> known_;  // newest first
  std::uint64_t reused_ = 0;
  std::string standIn_;        // what the line carries in a known value's place while parsed
  std::string standInQuoted_;  // ... as it is written there
};

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
  /// Decodes one line; exposed for the fuzzer and the tests. With `known`, a value it holds is put
  /// back instead of decoded (see KnownAnnotations).
  [[nodiscard]] static Result<WatchEvent> decodeLine(std::string_view line,
                                                     KnownAnnotations* known = nullptr);
  /// Values this stream's objects may carry back; owned by the caller, who outlives the decoder.
  void reuse(KnownAnnotations* known) { known_ = known; }
  bool failed() const { return failed_; }
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::string partial_;
  std::size_t lastLine_ = 0;  // the length of the last whole line
  bool failed_ = false;
  KnownAnnotations* known_ = nullptr;
};

}  // namespace eni
