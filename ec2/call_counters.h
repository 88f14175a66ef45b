#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace eni {

/// EC2 calls counted by operation and result ("success", "throttled", "not_found", ...), and
/// HTTP attempts by operation. These feed eni_agent_aws_api_calls_total; tests read them.
/// Thread-safe.
class CallCounters {
 public:
  void attempt(const std::string& operation);
  void result(const std::string& operation, const std::string& result);

  std::uint64_t attempts(const std::string& operation) const;
  std::uint64_t calls(const std::string& operation, const std::string& result = "") const;
  /// Every call of every operation; "" result means all results.
  std::uint64_t totalCalls() const;
  std::map<std::pair<std::string, std::string>, std::uint64_t> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> attempts_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> calls_;
};

}  // namespace eni
