#pragma once

#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace eni {

/// What kind of failure an Error is. Retry policy switches on this, never on message text.
enum class ErrorCode {
  Transient,   // network, 5xx, timeouts: retry with backoff
  Throttled,   // rate limited by the peer: retry with backoff, slow the bucket
  NotFound,    // the object does not exist
  Conflict,    // optimistic concurrency or ownership conflict
  Invalid,     // bad input: never retried, the message says what to fix
  Permission,  // authn/authz refused: never retried
  Gone,        // resource version expired (HTTP 410): relist
  Internal,    // a bug or an unexpected response shape
};

std::string_view toString(ErrorCode code);

/// A failure with enough context to log once and decide on a retry.
struct Error {
  Error() = default;
  Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}

  ErrorCode code = ErrorCode::Internal;
  std::string message;
  long httpStatus = 0;    // 0 when there was no HTTP response
  std::string awsCode;    // e.g. "InvalidNetworkInterfaceID.NotFound"
  std::string requestId;  // AWS request ID or Kubernetes audit ID, when known

  bool retryable() const { return code == ErrorCode::Transient || code == ErrorCode::Throttled; }
  /// "message (http 404, code X, request-id Y)": the form every log line uses.
  std::string describe() const;
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
inline tl::unexpected<Error> fail(Error error) { return tl::unexpected<Error>(std::move(error)); }

}  // namespace eni
