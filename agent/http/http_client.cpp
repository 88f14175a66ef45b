#include "agent/http/http_client.h"

#include <sys/epoll.h>

#include <curl/curl.h>

#include <cstring>
#include <mutex>

#include "agent/base/event_loop.h"

namespace eni {
namespace {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct HttpClient::Transfer {
  RequestId id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpRequest request;
  HttpResponse response;
  Done done;
  bool cancelled = false;
  char errorBuffer[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

HttpClient::HttpClient(EventLoop& loop) : loop_(loop) {
  globalInit();
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
    if (code != CURLE_OK) {
      std::string reason =
          transfer->errorBuffer[0] != '\0' ? transfer->errorBuffer : curl_easy_strerror(code);
      Error error{ErrorCode::Transient,
                  transfer->request.method + " " + transfer->request.url + ": " + reason};
      transfer->done(fail(std::move(error)));
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

  curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->errorBuffer);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpClient::onWrite);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connectTimeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 10L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");

  if (r.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
  }

  for (const auto& header : r.headers) {
    transfer->headers = curl_slist_append(transfer->headers, header.c_str());
  }
  if (!r.bearerToken.empty()) {
    const std::string auth = "Authorization: Bearer " + r.bearerToken;
    transfer->headers = curl_slist_append(transfer->headers, auth.c_str());
  }
  // libcurl adds "Expect: 100-continue" to large bodies, which costs a round trip.
  transfer->headers = curl_slist_append(transfer->headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);

  if (!r.caPem.empty()) {
    curl_blob blob{const_cast<char*>(r.caPem.data()), r.caPem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);
  } else if (!r.caFile.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, r.caFile.c_str());
  }
  if (!r.clientCertPem.empty()) {
    curl_blob cert{const_cast<char*>(r.clientCertPem.data()), r.clientCertPem.size(),
                   CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(r.clientKeyPem.data()), r.clientKeyPem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key);
  }
  if (!r.awsSigV4.empty()) {
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, r.awsSigV4.c_str());
    curl_easy_setopt(easy, CURLOPT_USERNAME, r.awsAccessKeyId.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, r.awsSecretAccessKey.c_str());
  }

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
