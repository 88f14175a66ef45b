#include "agent/base/backoff.h"

#include <algorithm>

namespace eni {

Backoff::Backoff(Duration base, Duration cap, std::uint64_t seed)
    : base_(base), cap_(cap), rng_(seed) {}

Duration Backoff::ceiling() const {
  // Stop doubling once past the cap so the shift never overflows.
  const int shift = std::min(attempt_, 30);
  const auto grown = base_.count() * (std::int64_t{1} << shift);
  return Duration(std::min<std::int64_t>(grown, cap_.count()));
}

Duration Backoff::next() {
  const Duration top = ceiling();
  ++attempt_;
  std::uniform_int_distribution<std::int64_t> pick(0, top.count());
  return Duration(pick(rng_));
}

}  // namespace eni
