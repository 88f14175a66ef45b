#include "ec2/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace eni {

RateLimiter::RateLimiter(double qps, std::int64_t burst, const Clock& clock, Sleeper& sleeper)
    : configuredQps_(qps),
      burst_(static_cast<double>(std::max<std::int64_t>(burst, 1))),
      clock_(clock),
      sleeper_(sleeper),
      rate_(qps),
      tokens_(static_cast<double>(std::max<std::int64_t>(burst, 1))),
      last_(clock.now()) {}

void RateLimiter::refillLocked(TimePoint now) {
  const double seconds = std::chrono::duration<double>(now - last_).count();
  if (seconds > 0) tokens_ = std::min(burst_, tokens_ + seconds * rate_);
  last_ = now;
}

void RateLimiter::acquire() {
  Duration wait{0};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    refillLocked(clock_.now());
    // The token is taken now, even when it has to be waited for, so concurrent callers queue
    // behind each other instead of all waking at once.
    tokens_ -= 1;
    if (tokens_ < 0) {
      wait = Duration(static_cast<std::int64_t>(std::ceil(-tokens_ / rate_ * 1000)));
      ++waits_;
      waited_ += wait;
    }
  }
  if (wait.count() > 0) sleeper_.sleepFor(wait);
}

void RateLimiter::onThrottled() {
  std::lock_guard<std::mutex> lock(mutex_);
  refillLocked(clock_.now());
  rate_ = std::max(configuredQps_ / 10, rate_ / 2);
}

void RateLimiter::onSuccess() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (rate_ >= configuredQps_) return;
  refillLocked(clock_.now());
  rate_ = std::min(configuredQps_, rate_ + configuredQps_ * 0.05);
}

Duration RateLimiter::untilAvailable(double tokens) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const double seconds = std::chrono::duration<double>(clock_.now() - last_).count();
  const double now = std::min(burst_, tokens_ + std::max(seconds, 0.0) * rate_);
  const double wanted = std::min(tokens, burst_);
  if (now >= wanted) return Duration(0);
  return Duration(static_cast<std::int64_t>(std::ceil((wanted - now) / rate_ * 1000)));
}

double RateLimiter::currentRate() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rate_;
}

std::uint64_t RateLimiter::waits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waits_;
}

Duration RateLimiter::waited() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waited_;
}

}  // namespace eni
