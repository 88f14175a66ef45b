#include "agent/kube/curl_kube_client.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "agent/base/json.h"
#include "agent/base/strings.h"

namespace eni {

struct CurlKubeClient::Watch {
  HttpClient::RequestId request = 0;
  WatchStreamDecoder decoder;
  std::optional<Error> streamError;
};

namespace {

std::string collectionPath(const ResourceKind& kind, const std::string& ns) {
  std::string path = kind.apiPrefix;
  if (kind.namespaced && !ns.empty()) path += "/namespaces/" + percentEncode(ns);
  return path + "/" + kind.plural;
}

std::string query(const ListOptions& options) {
  std::string q;
  auto add = [&q](const char* key, const std::string& value) {
    if (value.empty()) return;
    q += q.empty() ? "?" : "&";
    q += key;
    q += "=" + percentEncode(value);
  };
  add("fieldSelector", options.fieldSelector);
  add("labelSelector", options.labelSelector);
  return q;
}

ErrorCode codeForStatus(long status) {
  switch (status) {
    case 400:
    case 422:
      return ErrorCode::Invalid;
    case 401:
    case 403:
      return ErrorCode::Permission;
    case 404:
      return ErrorCode::NotFound;
    case 409:
      return ErrorCode::Conflict;
    case 410:
      return ErrorCode::Gone;
    case 429:
      return ErrorCode::Throttled;
    default:
      return status >= 500 ? ErrorCode::Transient : ErrorCode::Internal;
  }
}

}  // namespace

std::string objectPath(const ObjectRef& ref) {
  std::string path = collectionPath(ref.kind, ref.ns);
  if (!ref.name.empty()) path += "/" + percentEncode(ref.name);
  if (!ref.subresource.empty()) path += "/" + ref.subresource;
  return path;
}

Result<Json::Value> decodeKubeResponse(const std::string& what, const HttpResponse& response) {
  if (response.status >= 200 && response.status < 300) {
    if (response.body.empty()) return Json::Value();
    auto parsed = parseJson(response.body);
    if (!parsed) {
      return fail(ErrorCode::Internal, what + ": the API server answered with invalid JSON");
    }
    return parsed;
  }
  std::string reason;
  if (auto status = parseJson(response.body); status && status->isObject()) {
    reason = stringField(*status, "message");
  }
  if (reason.empty()) {
    reason = response.body.substr(0, 200);
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
  }
  Error error{codeForStatus(response.status),
              what + ": " + (reason.empty() ? "no reason given" : reason)};
  error.httpStatus = response.status;
  return fail(std::move(error));
}

CurlKubeClient::CurlKubeClient(HttpClient& http, KubeConfig config, KubeClientOptions options)
    : http_(http),
      config_(std::move(config)),
      options_(options),
      check_(http.scheduler(), [this] { checkConnection(); }),
      tokens_(config_) {}

CurlKubeClient::~CurlKubeClient() = default;

void CurlKubeClient::received() { lastReceived_ = std::chrono::steady_clock::now(); }

void CurlKubeClient::armConnectionCheck(Duration delay) {
  if (options_.watchIdleTimeout.count() <= 0) return;
  check_.enableIfDisabled(delay);
}

void CurlKubeClient::checkConnection() {
  if (watches_.empty() || checkInFlight_) return;  // a new watch re-arms it
  const auto idle = std::chrono::steady_clock::now() - lastReceived_;
  if (idle < options_.watchIdleTimeout) {
    armConnectionCheck(std::chrono::duration_cast<Duration>(options_.watchIdleTimeout - idle) +
                       Duration(1));
    return;
  }
  // Every watch has been silent for the whole idle time: ask the API server something small on
  // the same (multiplexed) connection. No answer within the timeout closes the connection (see
  // HttpRequest::idleTimeout), which ends every watch on it; they re-open on a new one.
  auto r = request("GET", "/version");
  if (!r) {
    armConnectionCheck(options_.watchIdleTimeout);
    return;
  }
  const Duration timeout = std::min(options_.watchIdleTimeout / 2, Duration(15000));
  r->timeout = timeout;
  r->idleTimeout = timeout;
  checkInFlight_ = true;
  ++connectionChecks_;
  http_.start(std::move(*r), [this](const Result<HttpResponse>& response) {
    checkInFlight_ = false;
    if (response) {
      received();
    } else {
      ++failedConnectionChecks_;
    }
    armConnectionCheck(options_.watchIdleTimeout);
  });
}

Result<HttpRequest> CurlKubeClient::request(const std::string& method, const std::string& path) {
  HttpRequest r;
  r.method = method;
  r.url = config_.server + path;
  r.caPem = config_.caPem;
  r.clientCertPem = config_.clientCertPem;
  r.clientKeyPem = config_.clientKeyPem;
  r.maxBodyBytes = maxBodyBytes_;
  r.headers.push_back("Accept: application/json");
  r.headers.push_back("User-Agent: eni-agent");
  r.timeout = options_.requestTimeout;
  auto token = tokens_.current();
  if (!token) return fail(token.error());
  r.bearerToken = *token;
  return r;
}

void CurlKubeClient::send(HttpRequest r, Callback<Json::Value> done) {
  send(std::move(r), "", std::move(done));
}

void CurlKubeClient::send(HttpRequest r, const std::string& listOf, Callback<Json::Value> done) {
  const std::string what = r.method + " " + r.url.substr(config_.server.size());
  http_.start(std::move(r),
              [this, what, listOf, done = std::move(done)](Result<HttpResponse> response) {
                if (!response) {
                  done(fail(response.error()));
                  return;
                }
                if (!listOf.empty()) traffic_.listPage(listOf, response->body.size());
                received();
                done(decodeKubeResponse(what, *response));
              });
}

void CurlKubeClient::list(const ResourceKind& kind, const std::string& ns,
                          const ListOptions& options, Callback<ObjectList> done) {
  listPage(kind, ns, options, "", std::make_shared<ObjectList>(), std::move(done));
}

void CurlKubeClient::listPage(const ResourceKind& kind, const std::string& ns,
                              const ListOptions& options, const std::string& continueToken,
                              const std::shared_ptr<ObjectList>& acc, Callback<ObjectList> done) {
  std::string path = collectionPath(kind, ns) + query(options);
  const int limit = options.limit > 0 ? options.limit : 500;
  path += path.find('?') == std::string::npos ? "?limit=" : "&limit=";
  path += std::to_string(limit);
  if (!continueToken.empty()) path += "&continue=" + percentEncode(continueToken);
  auto r = request("GET", path);
  if (!r) {
    done(fail(r.error()));
    return;
  }
  send(std::move(*r), kind.plural,
       [this, kind, ns, options, acc, done = std::move(done)](Result<Json::Value> page) mutable {
         if (!page) {
           done(fail(page.error()));
           return;
         }
         for (const auto& item : arrayField(*page, "items")) acc->items.push_back(item);
         const Json::Value& meta = objectField(*page, "metadata");
         acc->resourceVersion = stringField(meta, "resourceVersion");
         const std::string next = stringField(meta, "continue");
         if (options.limit > 0) {
           acc->more = !next.empty();
           acc->remainingItemCount = intField(meta, "remainingItemCount", acc->more ? -1 : 0);
         }
         if (next.empty() || options.limit > 0) {
           done(std::move(*acc));
           return;
         }
         listPage(kind, ns, options, next, acc, std::move(done));
       });
}

namespace {

std::string watchPath(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                      int timeoutSeconds) {
  std::string path = collectionPath(kind, ns) + query(options);
  path += path.find('?') == std::string::npos ? "?" : "&";
  path += "watch=1&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeoutSeconds);
  if (!options.resourceVersion.empty())
    path += "&resourceVersion=" + percentEncode(options.resourceVersion);
  return path;
}

}  // namespace

WatchId CurlKubeClient::watch(const ResourceKind& kind, const std::string& ns,
                              const ListOptions& options, std::function<void(WatchEvent)> onEvent,
                              std::function<void(Result<void>)> onClosed) {
  const WatchId id = nextWatchId_++;
  // Like client-go, spread stream lifetimes over 5-10 minutes so that restarts do not align.
  const int timeout = options.timeoutSeconds > 0
                          ? options.timeoutSeconds
                          : std::uniform_int_distribution<int>(300, 600)(rng_);
  auto r = request("GET", watchPath(kind, ns, options, timeout));
  if (!r) {
    // An unreadable token file: reported at once, before watch() returns.
    onClosed(fail(r.error()));
    return id;
  }
  auto state = std::make_shared<Watch>();
  state->decoder.reuse(&echoed_);
  r->timeout = Duration(0);
  // The API server ends the stream at `timeout`; silence well past it means the stream (or its
  // connection) is gone, whatever TCP says.
  r->idleTimeout = Duration(timeout * 1000LL) + options_.watchDeadlineMargin;
  streamEvents(*r, state, kind.plural, std::move(onEvent));
  state->request = http_.start(std::move(*r),
                               watchEnded(id, state, "watch " + kind.plural, std::move(onClosed)));
  watches_[id] = std::move(state);
  armConnectionCheck(options_.watchIdleTimeout);
  return id;
}

void CurlKubeClient::streamEvents(HttpRequest& r, const std::weak_ptr<Watch>& watch,
                                  const std::string& resource,
                                  std::function<void(WatchEvent)> onEvent) {
  r.onResponseStarted = [this, watch, onEvent] {
    if (watch.expired()) return;
    received();
    onEvent(WatchEvent{WatchEventType::Opened, Json::Value()});
  };
  r.onBodyChunk = [this, watch, resource, onEvent = std::move(onEvent)](std::string_view chunk) {
    auto w = watch.lock();
    if (!w) return false;
    received();
    traffic_.watchChunk(resource, chunk.size());
    auto fed = w->decoder.feed(chunk, [this, &resource, &onEvent](WatchEvent e) {
      traffic_.watchEvent(resource, e.type);
      onEvent(std::move(e));
    });
    if (!fed) {
      w->streamError = fed.error();
      return false;  // abort the transfer; onClosed reports the decoder's error
    }
    return true;
  };
}

HttpClient::Done CurlKubeClient::watchEnded(WatchId id, const std::weak_ptr<Watch>& watch,
                                            std::string what,
                                            std::function<void(Result<void>)> onClosed) {
  return [this, id, watch, what = std::move(what),
          onClosed = std::move(onClosed)](Result<HttpResponse> response) {
    auto w = watch.lock();
    watches_.erase(id);
    if (w && w->streamError) {
      onClosed(fail(*w->streamError));
      return;
    }
    if (!response) {
      onClosed(fail(response.error()));
      return;
    }
    if (auto decoded = decodeKubeResponse(what, *response); !decoded) {
      onClosed(fail(decoded.error()));
      return;
    }
    onClosed({});
  };
}

void CurlKubeClient::cancelWatch(WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  http_.cancel(it->second->request);
  watches_.erase(it);
}

void CurlKubeClient::get(const ObjectRef& ref, Callback<Json::Value> done) {
  auto r = request("GET", objectPath(ref));
  if (!r) return done(fail(r.error()));
  send(std::move(*r), std::move(done));
}

void CurlKubeClient::getPath(const std::string& path, Callback<Json::Value> done) {
  auto r = request("GET", path);
  if (!r) return done(fail(r.error()));
  send(std::move(*r), std::move(done));
}

namespace {

/// {"metadata":{"annotations":{...}}} with string values alone.
bool annotationsOnly(const Json::Value& body) {
  if (!body.isObject() || body.size() != 1) return false;
  const Json::Value& metadata = objectField(body, "metadata");
  if (metadata.size() != 1) return false;
  const Json::Value& annotations = objectField(metadata, "annotations");
  if (annotations.empty()) return false;
  for (const auto& value : annotations) {
    if (!value.isString() && !value.isNull()) return false;
  }
  return true;
}

}  // namespace

void CurlKubeClient::patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
                           const PatchOptions& options, Callback<Json::Value> done) {
  std::string path = objectPath(ref);
  if (type == PatchType::Apply) {
    if (options.fieldManager.empty()) {
      return done(fail(ErrorCode::Internal, "server-side apply needs a field manager"));
    }
    path += "?fieldManager=" + percentEncode(options.fieldManager);
    if (options.force) path += "&force=true";
  } else if (!options.fieldManager.empty()) {
    path += "?fieldManager=" + percentEncode(options.fieldManager);
  }
  auto r = request("PATCH", path);
  if (!r) return done(fail(r.error()));
  // JSON is YAML, so the apply body needs no YAML encoder.
  r->headers.push_back(type == PatchType::Apply ? "Content-Type: application/apply-patch+yaml"
                       : type == PatchType::Strategic
                           ? "Content-Type: application/strategic-merge-patch+json"
                           : "Content-Type: application/merge-patch+json");
  if (options.echoed && type == PatchType::Merge && annotationsOnly(body)) {
    // The members as the echo's decoding looks for them, which also make the body: the value
    // (tens of KiB) is quoted once.
    r->body = R"({"metadata":{"annotations":{)";
    const Json::Value& annotations = body["metadata"]["annotations"];
    for (auto it = annotations.begin(); it != annotations.end(); ++it) {
      if (it != annotations.begin()) r->body += ',';
      if (it->isNull())  // removes it
        r->body += KnownAnnotations::quoteAsApiServer(it.name()) + ":null";
      else
        r->body += echoed_.remember(it.name(), it->asString());
    }
    r->body += "}}}";
  } else {
    r->body = toJson(body);
  }
  if (!options.discardBody) return send(std::move(*r), std::move(done));
  // A 2xx answer's body (the whole object: a Node with its state, tens of KiB) is dropped as it
  // arrives instead of being kept and thrown away; another status keeps its body for the error.
  r->onBodyChunk = [](std::string_view) { return true; };
  const std::string what = r->method + " " + r->url.substr(config_.server.size());
  http_.start(std::move(*r), [this, what, done = std::move(done)](Result<HttpResponse> response) {
    if (!response) return done(fail(response.error()));
    received();
    if (response->status >= 200 && response->status < 300) return done(Json::Value());
    done(decodeKubeResponse(what, *response));
  });
}

void CurlKubeClient::create(const ObjectRef& ref, const Json::Value& object,
                            Callback<Json::Value> done) {
  ObjectRef collection = ref;
  collection.name.clear();
  auto r = request("POST", objectPath(collection));
  if (!r) return done(fail(r.error()));
  r->headers.push_back("Content-Type: application/json");
  r->body = toJson(object);
  send(std::move(*r), std::move(done));
}

void CurlKubeClient::remove(const ObjectRef& ref, Callback<Json::Value> done) {
  auto r = request("DELETE", objectPath(ref));
  if (!r) return done(fail(r.error()));
  send(std::move(*r), std::move(done));
}

void CurlKubeClient::update(const ObjectRef& ref, const Json::Value& object,
                            Callback<Json::Value> done) {
  auto r = request("PUT", objectPath(ref));
  if (!r) return done(fail(r.error()));
  r->headers.push_back("Content-Type: application/json");
  r->body = toJson(object);
  send(std::move(*r), std::move(done));
}

}  // namespace eni
