#pragma once

#include <functional>
#include <map>
#include <utility>

#include "agent/base/clock.h"

namespace eni::testing {

/// A Scheduler and Clock whose time only moves when the test says so.
class ManualScheduler final : public Scheduler, public Clock {
 public:
  TimerId runAfter(Duration delay, std::function<void()> fn) override {
    const TimerId id = next_++;
    timers_.emplace(id, Timer{now_ + delay, std::move(fn)});
    return id;
  }
  void cancel(TimerId id) override { timers_.erase(id); }
  TimePoint now() const override { return now_; }
  std::int64_t wallSeconds() const override {
    return 1'700'000'000 +
           std::chrono::duration_cast<std::chrono::seconds>(now_.time_since_epoch()).count();
  }

  /// Moves time forward by `by`, running every timer that falls due, in deadline order.
  void advance(Duration by) {
    const TimePoint until = now_ + by;
    while (true) {
      auto due = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it) {
        if (it->second.at <= until && (due == timers_.end() || it->second.at < due->second.at))
          due = it;
      }
      if (due == timers_.end()) break;
      now_ = due->second.at;
      auto fn = std::move(due->second.fn);
      timers_.erase(due);
      fn();
    }
    now_ = until;
  }
  std::size_t pending() const { return timers_.size(); }
  /// The delay until the earliest timer, or -1 ms when none is pending.
  Duration nextDelay() const {
    Duration best(-1);
    for (const auto& [id, t] : timers_) {
      const auto d = std::chrono::duration_cast<Duration>(t.at - now_);
      if (best.count() < 0 || d < best) best = d;
    }
    return best;
  }

 private:
  struct Timer {
    TimePoint at;
    std::function<void()> fn;
  };
  TimePoint now_{};
  TimerId next_ = 1;
  std::map<TimerId, Timer> timers_;
};

}  // namespace eni::testing
