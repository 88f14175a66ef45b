#include "agent/http/blocking_http_client.h"

#include "agent/http/curl_easy.h"

namespace eni {
namespace {

struct Sink {
  std::string* body;
  std::size_t cap;
  bool overflow = false;
};

std::size_t collect(char* data, std::size_t size, std::size_t count, void* out) {
  auto* sink = static_cast<Sink*>(out);
  const std::size_t bytes = size * count;
  if (bytes > sink->cap - sink->body->size()) {
    sink->overflow = true;
    return 0;  // anything but `bytes` aborts the transfer
  }
  sink->body->append(data, bytes);
  return bytes;
}

}  // namespace

BlockingHttpClient::BlockingHttpClient() {
  detail::globalInit();
  easy_ = curl_easy_init();
}

BlockingHttpClient::~BlockingHttpClient() { curl_easy_cleanup(static_cast<CURL*>(easy_)); }

Result<HttpResponse> BlockingHttpClient::perform(const HttpRequest& request) {
  CURL* easy = static_cast<CURL*>(easy_);
  // Reset keeps the connection cache, so the next call to the same host reuses the connection.
  curl_easy_reset(easy);
  curl_slist* headers = detail::configureEasy(easy, request);
  HttpResponse response;
  char errorBuffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errorBuffer);
  Sink sink{&response.body, request.maxBodyBytes};
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
  const CURLcode code = curl_easy_perform(easy);
  curl_slist_free_all(headers);
  long newConnections = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &newConnections);
  connects_ += newConnections;
  if (sink.overflow || code == CURLE_FILESIZE_EXCEEDED) {
    std::string().swap(response.body);  // hand the buffer back now, not when the caller is done
    return fail(detail::bodyTooLarge(request));
  }
  if (code != CURLE_OK) return fail(detail::transportError(request, code, errorBuffer));
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  char* contentType = nullptr;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &contentType);
  if (contentType != nullptr) response.contentType = contentType;
  return response;
}

}  // namespace eni
