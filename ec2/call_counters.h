#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "agent/base/histogram.h"

namespace eni {

/// EC2 calls counted by operation and result ("success", "throttled", "not_found", ...), HTTP
/// attempts by operation, and each attempt's duration by operation. These feed
/// eni_agent_aws_api_calls_total and eni_agent_aws_api_duration_seconds; tests read them.
/// Thread-safe.
class CallCounters {
 public:
  void attempt(const std::string& operation);
  void result(const std::string& operation, const std::string& result);
  /// One HTTP attempt's time from request to answer (or transport failure), in seconds.
  void duration(const std::string& operation, double seconds);

  std::uint64_t attempts(const std::string& operation) const;
  std::uint64_t calls(const std::string& operation, const std::string& result = "") const;
  /// Every call of every operation; "" result means all results.
  std::uint64_t totalCalls() const;
  std::map<std::pair<std::string, std::string>, std::uint64_t> snapshot() const;
  /// Attempt durations by operation (cumulative histograms).
  std::map<std::string, Histogram> durations() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> attempts_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> calls_;
  std::map<std::string, Histogram> durations_;
};

}  // namespace eni
