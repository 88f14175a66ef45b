#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "agent/base/clock.h"
#include "agent/base/error.h"

namespace eni {

/// Whether AWS accepts the agent's credentials, as the latest answers tell. CurlEc2Client records
/// every call in it; readiness reads problem(), and the composition roots read probeDue() to send
/// one cheap read now and then while the credentials are refused and nothing else calls.
/// Until an answer says otherwise the credentials count as good: a start costs no call.
/// Thread-safe.
class AwsHealth {
 public:
  explicit AwsHealth(const Clock& clock) : clock_(clock) {}

  /// A call is about to go out (or to ask the credential chain): probeDue() counts from it.
  void recordCall();
  /// EC2 answered 2xx: the credentials work (again).
  void recordSuccess();
  /// AWS refused the call (`error` is ErrorCode::Permission: AuthFailure, UnauthorizedOperation,
  /// InvalidClientTokenId, SignatureDoesNotMatch, ExpiredToken, ...) or the credential chain gave
  /// none (IRSA's STS refused, no instance profile, ...). Errors that say nothing about the
  /// credentials (Transient, Throttled) are ignored.
  void recordRefusal(const Error& error, bool fromCredentialChain);

  /// "" while the credentials work; else "<Code>: <detail>" in the readiness convention, e.g.
  /// "AuthFailure: DescribeNetworkInterfaces: AWS was not able to validate the provided access
  /// credentials (http 401, code AuthFailure, request-id ...)".
  std::string problem() const;
  bool refused() const;
  /// True while the credentials are refused and no call went out for `interval`: time for one
  /// cheap read to learn whether they work again. Never while they work.
  bool probeDue(Duration interval) const;
  /// How often the state went from working to refused, and back.
  std::uint64_t refusals() const;
  std::uint64_t recoveries() const;

 private:
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::optional<std::string> problem_;
  std::optional<TimePoint> lastCall_;
  std::uint64_t refusals_ = 0;
  std::uint64_t recoveries_ = 0;
};

/// The code token of a refusal: the AWS error code when there is one ('.' becomes '-'),
/// "NoCredentials" when the credential chain failed without one, else "AccessDenied".
std::string refusalCode(const Error& error, bool fromCredentialChain);

}  // namespace eni
