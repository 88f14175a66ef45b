#pragma once

#include <cstdint>
#include <vector>

namespace eni {

/// Cumulative latency histogram in seconds, with Prometheus' default buckets. Not thread-safe:
/// its owner guards it.
struct Histogram {
  std::vector<double> bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(11, 0);  // per bucket, cumulative
  std::uint64_t count = 0;
  double sum = 0;

  void observe(double seconds) {
    ++count;
    sum += seconds;
    for (std::size_t i = 0; i < bounds.size(); ++i) {
      if (seconds <= bounds[i]) ++counts[i];
    }
  }
};

}  // namespace eni
