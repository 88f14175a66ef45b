#include "agent/http/http_client.h"

#include <sys/epoll.h>

#include <curl/curl.h>

#include <cstring>
#include <mutex>

#include "agent/base/event_loop.h"
#include "agent/http/curl_easy.h"

namespace eni {

struct HttpClient::Transfer {
  RequestId id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpRequest request;
  HttpResponse response;
  Done done;
  bool cancelled = false;
  bool tooLarge = false;  // the body passed request.maxBodyBytes
  char errorBuffer[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

HttpClient::HttpClient(EventLoop& loop) : loop_(loop) {
  detail::globalInit();
  CURLM* multi = curl_multi_init();
  multi_ = multi;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &HttpClient::onSocket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &HttpClient::onTimer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
}

HttpClient::~HttpClient() {
  if (timerArmed_) loop_.cancel(timer_);
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
  if (self->timerArmed_) {
    self->loop_.cancel(self->timer_);
    self->timerArmed_ = false;
  }
  if (timeoutMs < 0) return 0;
  // curl forbids driving the multi handle from inside this callback; the loop runs it later.
  self->timerArmed_ = true;
  self->timer_ = self->loop_.runAfter(Duration(timeoutMs), [self] {
    self->timerArmed_ = false;
    self->socketAction(CURL_SOCKET_TIMEOUT, 0);
  });
  return 0;
}

std::size_t HttpClient::onWrite(char* data, std::size_t size, std::size_t count, void* ptr) {
  auto* transfer = static_cast<Transfer*>(ptr);
  const std::size_t bytes = size * count;
  if (transfer->cancelled) return 0;  // aborts the transfer
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
  auto transfer = std::make_unique<Transfer>();
  transfer->id = nextId_++;
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

  const RequestId id = transfer->id;
  transfers_.emplace(id, std::move(transfer));
  curl_multi_add_handle(static_cast<CURLM*>(multi_), easy);
  return id;
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
