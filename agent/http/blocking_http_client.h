#pragma once

#include "agent/base/error.h"
#include "agent/http/http_client.h"

namespace eni {

/// Synchronous HTTP for work that runs on a worker thread (the AWS layer). One easy handle is
/// kept across calls, so connections are reused. Not thread-safe: one instance per thread.
/// HttpRequest::onBodyChunk is not supported here.
class BlockingHttpClient {
 public:
  BlockingHttpClient();
  ~BlockingHttpClient();
  BlockingHttpClient(const BlockingHttpClient&) = delete;
  BlockingHttpClient& operator=(const BlockingHttpClient&) = delete;

  /// Performs `request`. Transport failures give Transient with curl's reason; any HTTP status
  /// is a response, callers map it.
  [[nodiscard]] Result<HttpResponse> perform(const HttpRequest& request);
  /// Connections opened so far; tests check reuse with it.
  long connectionsOpened() const { return connects_; }

 private:
  void* easy_ = nullptr;
  long connects_ = 0;
};

}  // namespace eni
