#include "agent/http/curl_easy.h"

#include <mutex>

namespace eni::detail {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

namespace {

constexpr long kUploadBufferBytes = 16L * 1024;

void setTransport(CURL* easy, const HttpRequest& r) {
  curl_easy_setopt(easy, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connectTimeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 10L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  // Over HTTP/2 every request body passes through a per-transfer upload buffer, 64 KiB unless
  // set. A burst of pod writes keeps dozens of PATCHes in flight: 2 MiB of heap at the peak
  // (massif), whose fragments stay resident. Bodies are a few KiB; curl's minimum is plenty.
  curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
  // A body announced longer than the cap is refused before any of it is read. A chunked body has
  // no length up front: the write callbacks count it. Not on streams (a watch's length is
  // unbounded by design; its decoder bounds each event).
  if (!r.onBodyChunk) {
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.maxBodyBytes));
  }
}

void setMethodAndBody(CURL* easy, const HttpRequest& r) {
  if (r.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (r.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    if (!r.body.empty() || r.method != "DELETE") {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r.body.c_str());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    }
  }
}

curl_slist* setHeaders(CURL* easy, const HttpRequest& r) {
  curl_slist* headers = nullptr;
  for (const auto& header : r.headers) headers = curl_slist_append(headers, header.c_str());
  if (!r.bearerToken.empty()) {
    const std::string auth = "Authorization: Bearer " + r.bearerToken;
    headers = curl_slist_append(headers, auth.c_str());
  }
  // libcurl adds "Expect: 100-continue" to large bodies, which costs a round trip; an empty
  // "Expect:" turns that off. Not on SigV4 requests: libcurl 7.88 would sign the empty header
  // without sending it, and the server's signature would not match (found against moto).
  if (r.awsSigV4.empty()) headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  return headers;
}

void setCredentials(CURL* easy, const HttpRequest& r) {
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
}

}  // namespace

curl_slist* configureEasy(CURL* easy, const HttpRequest& r) {
  setTransport(easy, r);
  setMethodAndBody(easy, r);
  curl_slist* headers = setHeaders(easy, r);
  setCredentials(easy, r);
  return headers;
}

Error transportError(const HttpRequest& request, CURLcode code, const char* errorBuffer) {
  const std::string reason =
      (errorBuffer != nullptr && errorBuffer[0] != '\0') ? errorBuffer : curl_easy_strerror(code);
  // The URL is safe to print: secrets never travel in it.
  return Error{ErrorCode::Transient, request.method + " " + request.url + ": " + reason};
}

Error bodyTooLarge(const HttpRequest& request) {
  return Error{ErrorCode::Transient,
               request.method + " " + request.url + ": the response body is larger than the " +
                   byteSize(request.maxBodyBytes) + " cap for this peer; refused and discarded"};
}

std::string byteSize(std::size_t bytes) {
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
    return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (std::size_t{1} << 10) && bytes % (std::size_t{1} << 10) == 0)
    return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace eni::detail
