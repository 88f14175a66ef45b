#include "agent/obs/health_server.h"

#include <CivetServer.h>

namespace eni {

struct HealthServer::Handler : public CivetHandler {
  Handler(HealthServer& server, bool readiness) : server_(server), readiness_(readiness) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    int status = 200;
    std::string body = "ok\n";
    {
      std::lock_guard<std::mutex> lock(server_.mutex_);
      if (readiness_) {
        if (!server_.ready_) {
          status = 503;
          body = "not ready: " + server_.summary_ + "\n";
        }
      } else {
        const auto quiet = std::chrono::steady_clock::now() - server_.beat_;
        if (quiet > std::chrono::seconds(10)) {
          status = 503;
          body = "event loop stalled for " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(quiet).count()) +
                 "s\n";
        }
      }
    }
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: "
              "close\r\n\r\n%s",
              status, status == 200 ? "OK" : "Service Unavailable", body.size(), body.c_str());
    return true;
  }
  HealthServer& server_;
  bool readiness_;
};

std::string civetPorts(const std::string& bindAddress) {
  if (!bindAddress.empty() && bindAddress.front() == ':') return bindAddress.substr(1);
  return bindAddress;
}

Result<std::unique_ptr<HealthServer>> HealthServer::start(const std::string& bindAddress) {
  if (bindAddress.empty() || bindAddress == "0") return std::unique_ptr<HealthServer>();
  std::unique_ptr<HealthServer> server(new HealthServer());
  server->healthz_ = std::make_unique<Handler>(*server, false);
  server->readyz_ = std::make_unique<Handler>(*server, true);
  try {
    server->server_ = std::make_unique<CivetServer>(
        std::vector<std::string>{"listening_ports", civetPorts(bindAddress), "num_threads", "2"});
  } catch (const std::exception& e) {
    return fail(ErrorCode::Invalid,
                "cannot listen on --health-probe-bind-address " + bindAddress + ": " + e.what());
  }
  server->wakeHost_ = localAddressOf(bindAddress);
  server->server_->addHandler("/healthz", *server->healthz_);
  server->server_->addHandler("/readyz", *server->readyz_);
  return server;
}

HealthServer::~HealthServer() {
  if (server_) server_->close();
}

Stoppable HealthServer::stopper() {
  Stoppable s;
  s.host = wakeHost_;
  if (server_) s.ports = server_->getListeningPorts();
  s.stop = [this] {
    if (server_) server_->close();
  };
  return s;
}

std::string localAddressOf(const std::string& bindAddress) {
  const auto colon = bindAddress.rfind(':');
  const std::string host = colon == std::string::npos ? "" : bindAddress.substr(0, colon);
  return host.empty() || host == "0.0.0.0" ? "127.0.0.1" : host;
}

void HealthServer::setReady(const ReadinessReport& report) {
  std::lock_guard<std::mutex> lock(mutex_);
  ready_ = report.ready;
  summary_ = report.summary;
}

void HealthServer::heartbeat() {
  std::lock_guard<std::mutex> lock(mutex_);
  beat_ = std::chrono::steady_clock::now();
}

}  // namespace eni
