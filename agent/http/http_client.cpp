#include "agent/http/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include <cstring>
#include <mutex>

#include "agent/base/event_loop.h"
#include "agent/http/curl_easy.h"

namespace eni {

struct HttpClient::Transfer {
  Transfer(RequestId transferId, Scheduler& scheduler, std::function<void()> onIdleCheck)
      : id(transferId), idleCheck(scheduler, std::move(onIdleCheck)) {}
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  RequestId id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpRequest request;
  HttpResponse response;
  Done done;
  bool cancelled = false;
  bool tooLarge = false;  // the body passed request.maxBodyBytes
  char errorBuffer[CURL_ERROR_SIZE] = {};
  TimePoint lastByte = std::chrono::steady_clock::now();
  Timer idleCheck;       // the next look at whether bytes still arrive (request.idleTimeout)
  bool started = false;  // onResponseStarted ran
  int localPort = 0;     // the two ends of the connection it runs on, once curl has one
  int remotePort = 0;
  std::string stalled;  // why its connection was closed as stalled, if it was

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

HttpClient::HttpClient(EventLoop& loop)
    : loop_(loop), curlTimer_(loop, [this] { socketAction(CURL_SOCKET_TIMEOUT, 0); }) {
  detail::globalInit();
  CURLM* multi = curl_multi_init();
  multi_ = multi;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &HttpClient::onSocket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &HttpClient::onTimer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
}

HttpClient::~HttpClient() {
  for (auto& [id, timer] : pendingRemovals_) loop_.cancel(timer);
  auto* multi = static_cast<CURLM*>(multi_);
  for (auto& [id, transfer] : transfers_) curl_multi_remove_handle(multi, transfer->easy);
  transfers_.clear();
  curl_multi_cleanup(multi);
}

int HttpClient::onSocket(void*, int fd, int what, void* selfPtr, void*) {
  auto* self = static_cast<HttpClient*>(selfPtr);
  if (what == CURL_POLL_REMOVE) {
    self->loop_.unwatchFd(fd);
    return 0;
  }
  std::uint32_t events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
  auto watched = self->loop_.watchFd(fd, events, [self, fd](std::uint32_t ready) {
    int flags = 0;
    if (ready & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (ready & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (ready & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    self->socketAction(fd, flags);
  });
  return watched ? 0 : -1;
}

int HttpClient::onTimer(void*, long timeoutMs, void* selfPtr) {
  auto* self = static_cast<HttpClient*>(selfPtr);
  if (timeoutMs < 0) {
    self->curlTimer_.disable();
    return 0;
  }
  // curl forbids driving the multi handle from inside this callback; the loop runs it later.
  self->curlTimer_.enable(Duration(timeoutMs));
  return 0;
}

Scheduler& HttpClient::scheduler() { return loop_; }

std::size_t HttpClient::onHeader(char* data, std::size_t size, std::size_t count, void* ptr) {
  auto* transfer = static_cast<Transfer*>(ptr);
  const std::size_t bytes = size * count;
  transfer->lastByte = std::chrono::steady_clock::now();
  const bool endOfHeaders = bytes <= 2 && (bytes == 0 || data[0] == '\r' || data[0] == '\n');
  if (!endOfHeaders || transfer->started || transfer->cancelled) return bytes;
  long status = 0;
  curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300) {
    transfer->started = true;
    if (transfer->request.onResponseStarted) transfer->request.onResponseStarted();
  }
  return bytes;
}

int HttpClient::onPrereq(void* ptr, char*, char*, int remotePort, int localPort) {
  auto* transfer = static_cast<Transfer*>(ptr);
  transfer->localPort = localPort;
  transfer->remotePort = remotePort;
  return CURL_PREREQFUNC_OK;
}

int HttpClient::onSocketOpened(void* selfPtr, int fd, int) {
  static_cast<HttpClient*>(selfPtr)->sockets_.insert(fd);
  return CURL_SOCKOPT_OK;
}

int HttpClient::onSocketClosed(void* selfPtr, int fd) {
  static_cast<HttpClient*>(selfPtr)->sockets_.erase(fd);
  return close(fd);
}

std::size_t HttpClient::onWrite(char* data, std::size_t size, std::size_t count, void* ptr) {
  auto* transfer = static_cast<Transfer*>(ptr);
  const std::size_t bytes = size * count;
  if (transfer->cancelled) return 0;  // aborts the transfer
  transfer->lastByte = std::chrono::steady_clock::now();
  long status = 0;
  curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
  if (transfer->request.onBodyChunk && status >= 200 && status < 300) {
    if (!transfer->request.onBodyChunk(std::string_view(data, bytes))) return 0;
    return bytes;
  }
  if (bytes > transfer->request.maxBodyBytes - transfer->response.body.size()) {
    transfer->tooLarge = true;
    std::string().swap(transfer->response.body);
    return 0;
  }
  transfer->response.body.append(data, bytes);
  return bytes;
}

void HttpClient::socketAction(int fd, int flags) {
  int running = 0;
  curl_multi_socket_action(static_cast<CURLM*>(multi_), fd, flags, &running);
  collectFinished();
}

void HttpClient::collectFinished() {
  auto* multi = static_cast<CURLM*>(multi_);
  std::vector<std::pair<std::unique_ptr<Transfer>, CURLcode>> finished;
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* raw = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
    const CURLcode code = msg->data.result;
    curl_multi_remove_handle(multi, msg->easy_handle);
    auto it = transfers_.find(raw->id);
    if (it == transfers_.end()) continue;
    it->second->idleCheck.disable();
    finished.emplace_back(std::move(it->second), code);
    transfers_.erase(it);
  }
  // Callbacks run after the bookkeeping, so they may start or cancel requests freely.
  for (auto& [transfer, code] : finished) {
    if (transfer->cancelled) continue;
    if (transfer->tooLarge || code == CURLE_FILESIZE_EXCEEDED) {
      transfer->done(fail(detail::bodyTooLarge(transfer->request)));
      continue;
    }
    if (!transfer->stalled.empty() && code != CURLE_OK) {
      transfer->done(fail(ErrorCode::Transient, transfer->stalled));
      continue;
    }
    if (code != CURLE_OK) {
      transfer->done(fail(detail::transportError(transfer->request, code, transfer->errorBuffer)));
      continue;
    }
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &transfer->response.status);
    char* contentType = nullptr;
    curl_easy_getinfo(transfer->easy, CURLINFO_CONTENT_TYPE, &contentType);
    if (contentType != nullptr) transfer->response.contentType = contentType;
    transfer->done(std::move(transfer->response));
  }
}

HttpClient::RequestId HttpClient::start(HttpRequest request, Done done) {
  const RequestId id = nextId_++;
  auto transfer = std::make_unique<Transfer>(id, loop_, [this, id] { checkIdle(id); });
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  CURL* easy = curl_easy_init();
  transfer->easy = easy;
  const HttpRequest& r = transfer->request;

  transfer->headers = detail::configureEasy(easy, r);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->errorBuffer);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpClient::onWrite);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &HttpClient::onHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
  // Which connection each request runs on, and every socket, so that a stalled connection can
  // be found and closed.
  curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, &HttpClient::onPrereq);
  curl_easy_setopt(easy, CURLOPT_PREREQDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, &HttpClient::onSocketOpened);
  curl_easy_setopt(easy, CURLOPT_SOCKOPTDATA, this);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &HttpClient::onSocketClosed);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, this);
  // Wait for the first connection to say whether it multiplexes rather than open one per request
  // at start: all of a node's API-server requests then share one HTTP/2 connection.
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);

  Transfer& kept = *transfer;
  transfers_.emplace(id, std::move(transfer));
  if (kept.request.idleTimeout.count() > 0) kept.idleCheck.enable(kept.request.idleTimeout);
  curl_multi_add_handle(static_cast<CURLM*>(multi_), easy);
  return id;
}

void HttpClient::checkIdle(RequestId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  Transfer& t = *it->second;
  if (t.cancelled) return;
  const auto idle = std::chrono::steady_clock::now() - t.lastByte;
  if (idle < t.request.idleTimeout) {
    t.idleCheck.enable(std::chrono::duration_cast<Duration>(t.request.idleTimeout - idle) +
                       Duration(1));
    return;
  }
  stall(id);
}

namespace {

int portOf(const sockaddr_storage& a) {
  return a.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port)
                                 : ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
}

}  // namespace

int HttpClient::socketOf(const Transfer& transfer) const {
  // The kernel may give two connections to different peers the same local port: match both ends.
  for (int fd : sockets_) {
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t localLen = sizeof local;
    socklen_t peerLen = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) != 0 ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peerLen) != 0) {
      continue;
    }
    if (portOf(local) == transfer.localPort && portOf(peer) == transfer.remotePort) return fd;
  }
  return -1;
}

void HttpClient::stall(RequestId id) {
  auto it = transfers_.find(id);
  std::unique_ptr<Transfer> transfer = std::move(it->second);
  transfers_.erase(it);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), transfer->easy);
  const long ms = static_cast<long>(transfer->request.idleTimeout.count());
  const std::string reason =
      transfer->request.method + " " + transfer->request.url + ": no data for " +
      (ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms") +
      "; the connection stalled, closed it to reconnect";
  // Every request on the same connection fails with the same reason; shutting the socket down
  // makes curl see the end at once and drop the connection from its cache, so nothing new is
  // sent on it.
  int closed = -1;
  if (transfer->localPort > 0) {
    for (auto& [otherId, other] : transfers_) {
      if (other->localPort == transfer->localPort && other->remotePort == transfer->remotePort)
        other->stalled = reason;
    }
    closed = socketOf(*transfer);
  }
  if (closed >= 0) {
    ++stalledConnections_;
    ::shutdown(closed, SHUT_RDWR);
    socketAction(closed, CURL_CSELECT_IN | CURL_CSELECT_ERR);
  }
  transfer->done(fail(ErrorCode::Transient, reason));
}

void HttpClient::cancel(RequestId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  if (it->second->cancelled) return;
  it->second->cancelled = true;
  // Removing a handle from inside one of curl's callbacks is not allowed; do it from the loop.
  pendingRemovals_[id] = loop_.runAfter(Duration(0), [this, id] { remove(id); });
}

void HttpClient::remove(RequestId id) {
  pendingRemovals_.erase(id);
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), it->second->easy);
  transfers_.erase(it);
}

}  // namespace eni
