#include "agent/base/clock.h"

#include <ctime>
#include <thread>

namespace eni {

std::string nowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void RealSleeper::sleepFor(Duration duration) {
  if (duration.count() > 0) std::this_thread::sleep_for(duration);
}

}  // namespace eni
