#pragma once

#include <functional>

#include "agent/base/clock.h"

namespace eni {

/// A timer as an object (in the manner of Envoy's Event::Timer): enable() arms it, replacing any
/// pending timeout; disable() cancels it; destroying it cancels it. So no `bool armed_` and timer
/// id pair shadows it, and a callback never outlives its owner. Loop thread only.
class Timer {
 public:
  Timer(Scheduler& scheduler, std::function<void()> onFire)
      : scheduler_(scheduler), onFire_(std::move(onFire)) {}
  ~Timer() { disable(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// Fires once after `delay`; a pending timeout is replaced. The callback may destroy this timer
  /// (and its owner) as long as it touches neither afterwards.
  void enable(Duration delay);
  /// Fires after `delay` unless it is already armed (the earlier deadline stands).
  void enableIfDisabled(Duration delay) {
    if (!enabled_) enable(delay);
  }
  void disable();
  bool enabled() const { return enabled_; }

 private:
  Scheduler& scheduler_;
  std::function<void()> onFire_;
  TimerId id_ = 0;
  bool enabled_ = false;
};

}  // namespace eni
