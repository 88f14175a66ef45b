#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "agent/base/clock.h"
#include "agent/base/error.h"
#include "agent/obs/readiness.h"
#include "agent/obs/shutdown.h"

class CivetServer;

namespace eni {

/// /healthz and /readyz on --health-probe-bind-address. civetweb answers on its own threads; the
/// loop thread publishes what they report through setReady() and heartbeat() (a mutex guards it;
/// this and logging are the only shared state outside the loop).
/// /healthz: 200 while the loop turns (a heartbeat within the last 10 s), else 503.
/// /readyz: 200 once the agent is ready, else 503 with the failing checks' codes only
/// (ReadinessReport::summary): the endpoint is unauthenticated, so the detail stays in the log.
class HealthServer {
 public:
  /// Starts listening on "[host]:port"; "0" or "" gives nullptr (disabled). Errors name the
  /// address.
  [[nodiscard]] static Result<std::unique_ptr<HealthServer>> start(const std::string& bindAddress);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  /// Stops serving (idempotent); for stopTogether().
  Stoppable stopper();
  /// Publishes a readiness evaluation; /readyz shows only its summary.
  void setReady(const ReadinessReport& report);
  void heartbeat();

 private:
  HealthServer() = default;
  struct Handler;
  friend struct Handler;
  std::mutex mutex_;
  bool ready_ = false;
  std::string summary_ = "starting";
  std::chrono::steady_clock::time_point beat_ = std::chrono::steady_clock::now();
  std::unique_ptr<Handler> healthz_;
  std::unique_ptr<Handler> readyz_;
  std::unique_ptr<CivetServer> server_;
  std::string wakeHost_;  // an address it listens on
};

/// The address to reach a server bound to `bindAddress` on this machine ("127.0.0.1" for one
/// bound to every address).
std::string localAddressOf(const std::string& bindAddress);

/// ":8081" -> "8081", "127.0.0.1:8081" unchanged: civetweb's listening_ports form.
std::string civetPorts(const std::string& bindAddress);

}  // namespace eni
