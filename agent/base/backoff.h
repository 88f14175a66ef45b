#pragma once

#include <cstdint>
#include <random>

#include "agent/base/clock.h"

namespace eni {

/// Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2^n)).
/// Not thread-safe; each user owns one.
class Backoff {
 public:
  Backoff(Duration base, Duration cap, std::uint64_t seed = std::random_device{}());

  /// The delay before the next attempt; grows the attempt count.
  Duration next();
  /// The upper bound next() would draw from, without drawing. Tests check the policy with it.
  Duration ceiling() const;
  void reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  Duration base_;
  Duration cap_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace eni
