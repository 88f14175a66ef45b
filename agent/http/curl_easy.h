#pragma once

// Internal to eni_http: the request options both clients set on a libcurl easy handle.
#include <curl/curl.h>

#include "agent/http/http_client.h"

namespace eni::detail {

/// Applies `request` to `easy`: URL, method and body, timeouts, TLS (always verified), client
/// certificates, SigV4 signing and headers. Returns the header list, which the caller frees after
/// the transfer. `request` must outlive the transfer (libcurl keeps pointers into it).
curl_slist* configureEasy(CURL* easy, const HttpRequest& request);

/// The ErrorCode and message of a failed transfer.
Error transportError(const HttpRequest& request, CURLcode code, const char* errorBuffer);

/// Transient: the answer's body is longer than request.maxBodyBytes.
Error bodyTooLarge(const HttpRequest& request);

/// "64 KiB", "8 MiB", "1000 bytes": a cap as a person reads it.
std::string byteSize(std::size_t bytes);

void globalInit();

}  // namespace eni::detail
