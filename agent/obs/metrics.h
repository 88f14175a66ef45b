#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "agent/base/error.h"
#include "agent/base/histogram.h"

namespace prometheus {
class Exposer;
}

#include "agent/obs/shutdown.h"

namespace eni {

/// Everything /metrics reports, gathered by the loop thread from the components' own counters.
struct MetricsSnapshot {
  std::map<std::pair<std::string, std::string>, std::uint64_t> awsCalls;  // (operation, result)
  std::map<std::string, Histogram> awsDuration;  // by operation: each HTTP attempt
  std::uint64_t awsThrottled = 0;
  std::uint64_t imdsRequests = 0;
  std::map<std::string, std::uint64_t> resolveSources;
  std::map<std::string, std::uint64_t> podTagSync;  // by result
  Histogram tagSync;
  Histogram linkConfigure;
  std::uint64_t managedEnis = 0;
  std::uint64_t reconcileErrors = 0;
  std::uint64_t watchRestarts = 0;
  /// By resource (ResourceKind::plural): bytes of watch streams, bytes of list answers, and
  /// watch events (not bookmarks) the API server sent (CurlKubeClient::traffic()).
  std::map<std::string, std::uint64_t> kubeWatchBytes;
  std::map<std::string, std::uint64_t> kubeListBytes;
  std::map<std::string, std::uint64_t> kubeWatchEvents;
};

/// Prometheus text format on --metrics-bind-address through prometheus-cpp's Exposer. The loop
/// thread publishes a snapshot (about once a second); scrapes, on the exposer's threads, read the
/// latest under a mutex. The metric names are DESIGN.md's.
class MetricsServer {
 public:
  /// "0" or "" gives nullptr (disabled). Errors name the address.
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> start(const std::string& bindAddress);
  ~MetricsServer();
  void publish(MetricsSnapshot snapshot);
  /// Stops serving (idempotent); for stopTogether().
  Stoppable stopper();

 private:
  class Collector;
  MetricsServer() = default;
  std::shared_ptr<Collector> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string wakeHost_;  // an address it listens on
};

}  // namespace eni
