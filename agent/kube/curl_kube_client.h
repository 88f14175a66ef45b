#pragma once

#include <memory>
#include <random>
#include <unordered_map>

#include "agent/base/timer.h"
#include "agent/http/http_client.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/kube_traffic.h"
#include "agent/kube/watch_decoder.h"

namespace eni {

/// The body cap of one API-server answer. Lists come in pages of 500 objects (limit=500); a page
/// of pods at a few KiB to a few tens of KiB each is far below it. Watch streams are not buffered
/// whole: WatchStreamDecoder::kMaxLineBytes bounds each event instead.
inline constexpr std::size_t kKubeMaxBodyBytes = std::size_t{64} << 20;

struct KubeClientOptions {
  /// When no watch of this client received anything (no event, no bookmark) for this long, the
  /// client checks its connection with GET /version, which must answer within half of it (at most
  /// 15 s); a connection that does not is closed and every watch re-opens on a new one. The
  /// stand-in for client-go's HTTP/2 ReadIdleTimeout and PingTimeout: libcurl 7.88's multi
  /// interface can neither send an HTTP/2 PING nor see its answer. Zero turns the check off.
  Duration watchIdleTimeout{60000};
  /// A watch silent this long past its own server timeout (timeoutSeconds, when the API server
  /// ends it) is dropped, and its connection closed, whatever the check said.
  Duration watchDeadlineMargin{30000};
  /// Every other request: the whole exchange (lists, gets, writes).
  Duration requestTimeout{30000};
};

/// KubeApi over libcurl (HttpClient) on the event loop. Watch streams are decoded as they arrive.
/// Loop thread only.
class CurlKubeClient final : public KubeApi {
 public:
  CurlKubeClient(HttpClient& http, KubeConfig config, KubeClientOptions options = {});
  ~CurlKubeClient() override;
  CurlKubeClient(const CurlKubeClient&) = delete;
  CurlKubeClient& operator=(const CurlKubeClient&) = delete;

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
  void remove(const ObjectRef& ref, Callback<Json::Value> done) override;

  /// GET of a raw path such as /version; the body is returned as JSON.
  void getPath(const std::string& path, Callback<Json::Value> done);
  /// Lowers the body cap of later requests (kKubeMaxBodyBytes by default); for tests.
  void setMaxBodyBytes(std::size_t bytes) { maxBodyBytes_ = bytes; }

  /// Connection checks sent (see KubeClientOptions::watchIdleTimeout), and those that got no
  /// answer (their connection was closed).
  std::uint64_t connectionChecks() const { return connectionChecks_; }
  std::uint64_t failedConnectionChecks() const { return failedConnectionChecks_; }
  /// Bytes and events received on watches and lists, per resource (the agent's
  /// eni_agent_kube_watch_bytes_total and siblings).
  const KubeTraffic& traffic() const { return traffic_; }
  /// Watch events whose echoed annotation was put back instead of decoded (PatchOptions::echoed).
  std::uint64_t echoesReused() const { return echoed_.reused(); }

 private:
  struct Watch;
  [[nodiscard]] Result<HttpRequest> request(const std::string& method, const std::string& path);
  void send(HttpRequest request, Callback<Json::Value> done);
  /// `listOf`: the resource whose list page this is, counted in traffic_.
  void send(HttpRequest request, const std::string& listOf, Callback<Json::Value> done);
  void listPage(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                const std::string& continueToken, const std::shared_ptr<ObjectList>& acc,
                Callback<ObjectList> done);
  void received();
  /// Hands the stream's events to `onEvent` while `watch` lives.
  void streamEvents(HttpRequest& r, const std::weak_ptr<Watch>& watch, const std::string& resource,
                    std::function<void(WatchEvent)> onEvent);
  /// The end of a watch's request: forgets the watch and tells `onClosed` why it ended.
  HttpClient::Done watchEnded(WatchId id, const std::weak_ptr<Watch>& watch, std::string what,
                              std::function<void(Result<void>)> onClosed);
  void armConnectionCheck(Duration delay);
  void checkConnection();

  HttpClient& http_;
  KubeConfig config_;
  KubeClientOptions options_;
  std::chrono::steady_clock::time_point lastReceived_ = std::chrono::steady_clock::now();
  Timer check_;  // the next look at whether the watches' connection went silent
  bool checkInFlight_ = false;
  std::uint64_t connectionChecks_ = 0;
  std::uint64_t failedConnectionChecks_ = 0;
  KubeTraffic traffic_;
  KnownAnnotations echoed_;  // values of PatchOptions::echoed patches, for every watch's decoder
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
