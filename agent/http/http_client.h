#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/error.h"
#include "agent/base/timer.h"

namespace eni {

class EventLoop;

/// The body cap of a request whose caller sets none. Every peer's client sets its own, sized to
/// what that peer legitimately answers; this default keeps a forgotten caller bounded too.
inline constexpr std::size_t kDefaultMaxBodyBytes = std::size_t{1} << 20;

/// One HTTP request. Secrets (bearer token, AWS keys, client key) live in their own fields,
/// so nothing that formats a request for a log line can print them by accident.
struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::string bearerToken;  // sent as "Authorization: Bearer ..."
  std::string caPem;        // trust only this CA bundle; empty: the system store
  std::string caFile;       // or this CA file
  std::string clientCertPem;
  std::string clientKeyPem;
  std::string awsSigV4;  // e.g. "aws:amz:us-east-1:ec2": libcurl signs the request
  std::string awsAccessKeyId;
  std::string awsSecretAccessKey;
  Duration connectTimeout{5000};
  Duration timeout{30000};  // whole transfer; zero means none (watch streams)
  /// The largest body kept. A longer one (by Content-Length, or counted as it arrives when the
  /// body is chunked) aborts the transfer, frees what was buffered and fails with Transient
  /// "... larger than the cap"; the connection is not reused. Chunks handed to onBodyChunk are
  /// not kept and not counted: the stream's consumer bounds what it buffers.
  std::size_t maxBodyBytes = kDefaultMaxBodyBytes;
  /// When set, a 2xx body is handed over chunk by chunk as it arrives instead of being kept;
  /// any other status still collects its body. Return false to abort the transfer.
  std::function<bool(std::string_view chunk)> onBodyChunk;
  /// HttpClient only: runs once when a 2xx answer's headers are in, before any body (a watch
  /// stream is open).
  std::function<void()> onResponseStarted;
  /// HttpClient only; zero: none. When no byte of the answer arrived for this long, the request
  /// fails (Transient, "stalled") and the connection it ran on is closed: every other request
  /// multiplexed on that connection fails at once too, and later requests open a new one. A
  /// connection that stops forwarding while TCP stays up (a hung load balancer) is otherwise
  /// trusted for as long as the kernel keeps it.
  Duration idleTimeout{0};
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::string contentType;
};

/// Asynchronous HTTP over one libcurl multi handle driven by the EventLoop. Connections are
/// cached and reused across requests; an HTTP/2 server gets one connection that carries every
/// request (CURLOPT_PIPEWAIT). Loop thread only.
class HttpClient {
 public:
  using RequestId = std::uint64_t;
  using Done = std::function<void(Result<HttpResponse>)>;

  explicit HttpClient(EventLoop& loop);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Starts `request`; `done` runs on the loop thread exactly once unless cancelled.
  /// Transport failures give ErrorCode::Transient with curl's reason; HTTP statuses are not
  /// errors here, callers map them.
  RequestId start(HttpRequest request, Done done);
  /// Stops a request; its `done` never runs. Safe from inside any callback of this client.
  void cancel(RequestId id);
  /// Requests still in flight.
  std::size_t active() const { return transfers_.size(); }
  /// Connections closed because a request on them stalled (see HttpRequest::idleTimeout).
  std::uint64_t stalledConnections() const { return stalledConnections_; }
  /// The loop that drives this client, for timers of its users.
  Scheduler& scheduler();

 private:
  struct Transfer;
  static int onSocket(void* easy, int fd, int what, void* self, void* socketData);
  static int onTimer(void* multi, long timeoutMs, void* self);
  static std::size_t onWrite(char* data, std::size_t size, std::size_t count, void* transfer);
  static std::size_t onHeader(char* data, std::size_t size, std::size_t count, void* transfer);
  static int onPrereq(void* transfer, char* remoteIp, char* localIp, int remotePort, int localPort);
  static int onSocketOpened(void* self, int fd, int purpose);
  static int onSocketClosed(void* self, int fd);
  void socketAction(int fd, int flags);
  void collectFinished();
  void remove(RequestId id);
  void checkIdle(RequestId id);
  void stall(RequestId id);
  int socketOf(const Transfer& transfer) const;

  EventLoop& loop_;
  std::unordered_set<int> sockets_;  // every socket curl opened and has not closed yet
  std::uint64_t stalledConnections_ = 0;
  void* multi_ = nullptr;
  Timer curlTimer_;  // the timeout curl asked for (CURLMOPT_TIMERFUNCTION)
  RequestId nextId_ = 1;
  std::unordered_map<RequestId, std::unique_ptr<Transfer>> transfers_;
  std::unordered_map<RequestId, TimerId> pendingRemovals_;
};

}  // namespace eni
