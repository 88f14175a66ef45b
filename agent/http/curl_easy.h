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

void globalInit();

}  // namespace eni::detail
