#include "agent/base/clock.h"

#include <thread>

namespace eni {

void RealSleeper::sleepFor(Duration duration) {
  if (duration.count() > 0) std::this_thread::sleep_for(duration);
}

}  // namespace eni
