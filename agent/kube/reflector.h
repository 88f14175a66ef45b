#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <json/value.h>

#include "agent/base/backoff.h"
#include "agent/base/clock.h"
#include "agent/base/timer.h"
#include "agent/kube/kube_api.h"

namespace eni {

enum class ChangeType { Added, Modified, Deleted };

/// Keeps a local copy of one watched collection: list, then watch from the list's
/// resourceVersion with bookmarks. A 410 Gone relists and turns the difference between the old
/// copy and the new list into Added/Modified/Deleted changes, so no update is missed. Dropped
/// streams are re-opened from the last seen version after a jittered backoff.
/// There is no periodic relist. Loop thread only.
class Reflector {
 public:
  using OnChange = std::function<void(ChangeType, const Json::Value& object)>;
  /// Applied to every listed and watched object before it is kept and handed on.
  using Transform = std::function<void(Json::Value& object)>;

  Reflector(KubeApi& api, Scheduler& scheduler, ResourceKind kind, std::string ns,
            ListOptions options, OnChange onChange, std::uint64_t seed = std::random_device{}());
  ~Reflector();
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  /// Starts (or resumes after stop()) from the last seen version, or with a list.
  void start();
  /// Stops the stream and timers; the local copy and version are kept.
  void stop();
  /// Runs once, after the first list has been applied (and its changes delivered).
  void setOnSynced(std::function<void()> onSynced) { onSynced_ = std::move(onSynced); }
  /// Trims objects before they are kept (e.g. prunePod): the local copy holds only what the
  /// handlers read. Set before start().
  void setTransform(Transform transform) { transform_ = std::move(transform); }

  /// True once the first list has been applied.
  bool synced() const { return synced_; }
  /// Synced, and the watch works: false from a failed list or watch (a stalled connection, an
  /// API server that went away) until the API server answers again (the re-opened watch's
  /// Opened event, any event, or a list). A watch the server ended on its timeout stays live.
  bool live() const { return synced_ && running_ && lastError_.empty(); }
  const std::map<std::string, Json::Value>& objects() const { return objects_; }
  const std::string& resourceVersion() const { return resourceVersion_; }
  const ResourceKind& kind() const { return kind_; }

  std::uint64_t lists() const { return lists_; }
  std::uint64_t watchRestarts() const { return watchRestarts_; }
  std::uint64_t failures() const { return failures_; }
  /// The last error the reflector saw, for readiness messages; empty when healthy.
  const std::string& lastError() const { return lastError_; }

  /// "namespace/name" or "name".
  static std::string keyOf(const Json::Value& object);

 private:
  void relist();
  void openWatch();
  void retryLater(bool relistNext, const Error& error);
  void applyList(ObjectList list);
  void applyEvent(WatchEvent event);

  KubeApi& api_;
  ResourceKind kind_;
  std::string ns_;
  ListOptions options_;
  OnChange onChange_;
  std::function<void()> onSynced_;
  Transform transform_;
  Backoff backoff_;

  std::map<std::string, Json::Value> objects_;
  std::string resourceVersion_;
  bool running_ = false;
  bool synced_ = false;
  std::uint64_t generation_ = 0;  // bumps on stop(), so late callbacks of an old run are ignored
  WatchId watch_ = 0;
  bool watchOpen_ = false;
  Timer retry_;                 // re-opens the watch, or relists, after a failure
  bool relistOnRetry_ = false;  // what retry_ does when it fires
  std::uint64_t lists_ = 0;
  std::uint64_t watchRestarts_ = 0;
  std::uint64_t failures_ = 0;
  std::string lastError_;
};

}  // namespace eni
