#pragma once

#include <cstdint>
#include <mutex>

#include "agent/base/clock.h"

namespace eni {

/// The client-side token bucket for EC2 calls (--aws-rate-limit-qps / --aws-rate-limit-burst),
/// taken on every attempt, retries included. Adaptive: each throttled answer halves the refill
/// rate (down to a tenth of the configured rate), each success wins back 5% of the configured rate
/// until it is whole again. Thread-safe; acquire() blocks through the Sleeper.
class RateLimiter {
 public:
  RateLimiter(double qps, std::int64_t burst, const Clock& clock, Sleeper& sleeper);

  /// Takes one token, waiting for it when the bucket is empty.
  void acquire();
  void onThrottled();
  void onSuccess();

  /// How long until `tokens` tokens are in the bucket at once (0 when they are now).
  Duration untilAvailable(double tokens) const;
  double currentRate() const;
  /// How many acquire() calls had to wait, and for how long in all.
  std::uint64_t waits() const;
  Duration waited() const;

 private:
  void refillLocked(TimePoint now);

  const double configuredQps_;
  const double burst_;
  const Clock& clock_;
  Sleeper& sleeper_;
  mutable std::mutex mutex_;
  double rate_;
  double tokens_;
  TimePoint last_;
  std::uint64_t waits_ = 0;
  Duration waited_{0};
};

}  // namespace eni
