#include "agent/base/timer.h"

namespace eni {

void Timer::enable(Duration delay) {
  disable();
  enabled_ = true;
  id_ = scheduler_.runAfter(delay, [this] {
    enabled_ = false;
    onFire_();
  });
}

void Timer::disable() {
  if (!enabled_) return;
  scheduler_.cancel(id_);
  enabled_ = false;
}

}  // namespace eni
