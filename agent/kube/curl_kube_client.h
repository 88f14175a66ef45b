#pragma once

#include <memory>
#include <random>
#include <unordered_map>

#include "agent/http/http_client.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/watch_decoder.h"

namespace eni {

/// The body cap of one API-server answer. Lists come in pages of 500 objects (limit=500); a page
/// of pods at a few KiB to a few tens of KiB each is far below it. Watch streams are not buffered
/// whole: WatchStreamDecoder::kMaxLineBytes bounds each event instead.
inline constexpr std::size_t kKubeMaxBodyBytes = std::size_t{64} << 20;

/// KubeApi over libcurl (HttpClient) on the event loop. Watch streams are decoded as they arrive.
/// Loop thread only.
class CurlKubeClient final : public KubeApi {
 public:
  CurlKubeClient(HttpClient& http, KubeConfig config);

  void list(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
            Callback<ObjectList> done) override;
  WatchId watch(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                std::function<void(WatchEvent)> onEvent,
                std::function<void(Result<void>)> onClosed) override;
  void cancelWatch(WatchId id) override;
  void get(const ObjectRef& ref, Callback<Json::Value> done) override;
  void patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
             const PatchOptions& options, Callback<Json::Value> done) override;
  void create(const ObjectRef& ref, const Json::Value& object, Callback<Json::Value> done) override;
  void update(const ObjectRef& ref, const Json::Value& object, Callback<Json::Value> done) override;

  /// GET of a raw path such as /version; the body is returned as JSON.
  void getPath(const std::string& path, Callback<Json::Value> done);
  /// Lowers the body cap of later requests (kKubeMaxBodyBytes by default); for tests.
  void setMaxBodyBytes(std::size_t bytes) { maxBodyBytes_ = bytes; }

 private:
  struct Watch;
  [[nodiscard]] Result<HttpRequest> request(const std::string& method, const std::string& path);
  void send(HttpRequest request, Callback<Json::Value> done);
  void listPage(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                std::string continueToken, std::shared_ptr<ObjectList> acc,
                Callback<ObjectList> done);

  HttpClient& http_;
  KubeConfig config_;
  TokenSource tokens_;
  std::size_t maxBodyBytes_ = kKubeMaxBodyBytes;
  std::mt19937 rng_{std::random_device{}()};
  WatchId nextWatchId_ = 1;
  std::unordered_map<WatchId, std::shared_ptr<Watch>> watches_;
};

/// Maps an API response (status + Status body) to a value or a typed error.
[[nodiscard]] Result<Json::Value> decodeKubeResponse(const std::string& what,
                                                     const HttpResponse& response);
/// "/api/v1/namespaces/ns/pods/name/status"
std::string objectPath(const ObjectRef& ref);

}  // namespace eni
