#include "tests/support/eventually.h"

#include <thread>

namespace eni::testing {

bool pollUntil(const std::function<bool()>& done, Duration limit, Duration every, int* polls) {
  const TimePoint deadline = std::chrono::steady_clock::now() + limit;
  int looked = 0;
  bool held = false;
  while (true) {
    ++looked;
    held = done();
    if (held || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(every);
  }
  if (polls != nullptr) *polls = looked;
  return held;
}

}  // namespace eni::testing
