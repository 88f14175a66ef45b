#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <json/value.h>

#include "agent/base/error.h"

namespace eni {

/// Where a resource lives in the API: "/api/v1" + "pods", or a CRD's group path.
struct ResourceKind {
  std::string apiPrefix;  // "/api/v1" or "/apis/<group>/<version>"
  std::string plural;     // "pods", "nodes", "nodeenis", "events"
  bool namespaced = false;

  static ResourceKind pods() { return {"/api/v1", "pods", true}; }
  static ResourceKind nodes() { return {"/api/v1", "nodes", false}; }
  static ResourceKind events() { return {"/api/v1", "events", true}; }
  static ResourceKind secrets() { return {"/api/v1", "secrets", true}; }
  static ResourceKind configMaps() { return {"/api/v1", "configmaps", true}; }
  static ResourceKind nodeEnis() {
    return {"/apis/networking.k8s.aws/v1alpha1", "nodeenis", false};
  }
  static ResourceKind nodeEniAttachments() {
    return {"/apis/networking.k8s.aws/v1alpha1", "nodeeniattachments", false};
  }
};

/// One object, or a subresource of it ("status").
struct ObjectRef {
  ResourceKind kind;
  std::string ns;    // empty for cluster-scoped kinds, and for "all namespaces" in list/watch
  std::string name;  // empty for create
  std::string subresource;
};

struct ListOptions {
  std::string fieldSelector;
  std::string labelSelector;
  std::string resourceVersion;  // watch: the version to start after
  int timeoutSeconds = 0;       // watch: server-side stream lifetime; 0 picks 5-10 minutes
  /// list: > 0 asks for one page of at most `limit` items and follows no `continue` (a count or
  /// an existence check that must not read a whole collection); 0 reads every page.
  int limit = 0;
};

struct ObjectList {
  std::vector<Json::Value> items;
  std::string resourceVersion;
  /// With ListOptions::limit: how many more items the API server counted past the page (its
  /// metadata.remainingItemCount), -1 when it did not say (then `more` still tells).
  std::int64_t remainingItemCount = -1;
  bool more = false;  // with ListOptions::limit: the page had a `continue` token
};

/// Opened carries no object: the API server accepted the watch (its answer's headers are in), so
/// the stream is live before any event arrives.
enum class WatchEventType { Added, Modified, Deleted, Bookmark, Opened };

struct WatchEvent {
  WatchEventType type = WatchEventType::Added;
  Json::Value object;
};

enum class PatchType {
  Merge,      // application/merge-patch+json
  Strategic,  // application/strategic-merge-patch+json: lists merge by key (pod conditions)
  Apply,      // application/apply-patch+yaml (server-side apply), needs a field manager
};

struct PatchOptions {
  std::string fieldManager;  // required for Apply
  bool force = false;        // Apply: take ownership of conflicting fields
  // The caller needs only whether it worked: the answer (the whole object) is not parsed and the
  // callback gets null. The node-state patch answers with the whole Node, annotation and all.
  bool discardBody = false;
  // The string annotations this merge patch sets come back in the watch of the object (the
  // agent's own Node): the client may remember the long ones, so that the echo's decoding puts
  // them back instead of decoding them again (KnownAnnotations).
  bool echoed = false;
};

template <class T>
using Callback = std::function<void(Result<T>)>;
using WatchId = std::uint64_t;

/// The agent's only way to the Kubernetes API. Every call is asynchronous and completes on the
/// event-loop thread, exactly once. Errors map HTTP statuses to codes: 401/403 Permission,
/// 404 NotFound, 409 Conflict, 410 Gone, 400/422 Invalid, 429 Throttled, 5xx and transport
/// failures Transient; the message carries the API server's own reason.
/// Loop thread only.
class KubeApi {
 public:
  virtual ~KubeApi() = default;

  /// Lists every object of `kind` (in `ns`, or all namespaces when empty), following pages.
  virtual void list(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                    Callback<ObjectList> done) = 0;

  /// Streams changes after options.resourceVersion, with bookmarks. `onEvent` runs per event in
  /// order, first an Opened event once the server accepted the watch (CurlKubeClient). `onClosed`
  /// runs once when the stream ends: a value when the server ended it normally, Gone when the
  /// version is too old (relist), another error otherwise (Transient "stalled" when the stream or
  /// its connection went silent). Not called after cancelWatch().
  virtual WatchId watch(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                        std::function<void(WatchEvent)> onEvent,
                        std::function<void(Result<void>)> onClosed) = 0;
  virtual void cancelWatch(WatchId id) = 0;

  virtual void get(const ObjectRef& ref, Callback<Json::Value> done) = 0;
  /// Patches `ref` (or its subresource) with `body`, which is JSON for both patch types.
  virtual void patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
                     const PatchOptions& options, Callback<Json::Value> done) = 0;
  /// Creates `object` in ref.kind / ref.ns (ref.name is ignored).
  virtual void create(const ObjectRef& ref, const Json::Value& object,
                      Callback<Json::Value> done) = 0;
  /// Replaces `object` (PUT); metadata.resourceVersion makes it conditional.
  virtual void update(const ObjectRef& ref, const Json::Value& object,
                      Callback<Json::Value> done) = 0;
  /// Deletes `ref` (DELETE); answers what the API server returned (the object or a Status).
  /// NotFound when it is already gone.
  virtual void remove(const ObjectRef& ref, Callback<Json::Value> done) = 0;
};

}  // namespace eni
