#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace eni {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

/// Monotonic time, a seam so that timers are deterministic in tests.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  /// Wall-clock time for timestamps written to the API (RFC 3339), seconds since the epoch.
  virtual std::int64_t wallSeconds() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::int64_t wallSeconds() const override {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

/// Blocking waits on worker threads (retry backoff, the rate limiter), a seam so that tests
/// count waits instead of sleeping.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void sleepFor(Duration duration) = 0;
};

class RealSleeper final : public Sleeper {
 public:
  void sleepFor(Duration duration) override;
};

/// The current wall-clock time as RFC 3339 UTC ("2026-11-23T09:00:00Z"), for API timestamps.
std::string nowRfc3339();

using TimerId = std::uint64_t;

/// Deferred work on the one event-loop thread. EventLoop implements it; tests use a manual one.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  /// Runs `fn` on the loop thread after `delay`. Loop thread only.
  virtual TimerId runAfter(Duration delay, std::function<void()> fn) = 0;
  /// Cancels a timer that has not fired yet; unknown ids are ignored. Loop thread only.
  virtual void cancel(TimerId id) = 0;
};

}  // namespace eni
