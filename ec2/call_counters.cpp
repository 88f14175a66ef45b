#include "ec2/call_counters.h"

namespace eni {

void CallCounters::attempt(const std::string& operation) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++attempts_[operation];
}

void CallCounters::result(const std::string& operation, const std::string& result) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++calls_[{operation, result}];
}

void CallCounters::duration(const std::string& operation, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  durations_[operation].observe(seconds);
}

std::map<std::string, Histogram> CallCounters::durations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return durations_;
}

std::uint64_t CallCounters::attempts(const std::string& operation) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = attempts_.find(operation);
  return it == attempts_.end() ? 0 : it->second;
}

std::uint64_t CallCounters::calls(const std::string& operation, const std::string& result) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::uint64_t n = 0;
  for (const auto& [key, count] : calls_) {
    if (key.first == operation && (result.empty() || key.second == result)) n += count;
  }
  return n;
}

std::uint64_t CallCounters::totalCalls() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::uint64_t n = 0;
  for (const auto& [key, count] : calls_) n += count;
  return n;
}

std::map<std::pair<std::string, std::string>, std::uint64_t> CallCounters::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return calls_;
}

}  // namespace eni
