#include "agent/kube/reflector.h"

#include <memory>

#include "agent/base/json.h"
#include "agent/base/log.h"

namespace eni {
namespace {

std::string versionOf(const Json::Value& object) {
  return stringField(objectField(object, "metadata"), "resourceVersion");
}

}  // namespace

Reflector::Reflector(KubeApi& api, Scheduler& scheduler, ResourceKind kind, std::string ns,
                     ListOptions options, OnChange onChange, std::uint64_t seed)
    : api_(api),
      kind_(std::move(kind)),
      ns_(std::move(ns)),
      options_(std::move(options)),
      onChange_(std::move(onChange)),
      backoff_(Duration(500), Duration(30000), seed),
      retry_(scheduler, [this] {
        if (!running_) return;
        if (relistOnRetry_)
          relist();
        else
          openWatch();
      }) {}

Reflector::~Reflector() { stop(); }

std::string Reflector::keyOf(const Json::Value& object) {
  const Json::Value& meta = objectField(object, "metadata");
  const std::string ns = stringField(meta, "namespace");
  const std::string name = stringField(meta, "name");
  return ns.empty() ? name : ns + "/" + name;
}

void Reflector::start() {
  if (running_) return;
  running_ = true;
  if (resourceVersion_.empty()) {
    relist();
  } else {
    openWatch();
  }
}

void Reflector::stop() {
  if (!running_) return;
  running_ = false;
  ++generation_;
  if (watchOpen_) api_.cancelWatch(watch_);
  watchOpen_ = false;
  retry_.disable();
}

void Reflector::retryLater(bool relistNext, const Error& error) {
  ++failures_;
  lastError_ = error.describe();
  const Duration delay = backoff_.next();
  logDebug("kube reflector retrying", {{"resource", kind_.plural},
                                       {"error", lastError_},
                                       {"relist", relistNext ? "true" : "false"},
                                       {"delay_ms", delay.count()}});
  relistOnRetry_ = relistNext;
  retry_.enable(delay);
}

void Reflector::relist() {
  const std::uint64_t generation = generation_;
  ListOptions options = options_;
  options.resourceVersion.clear();
  api_.list(kind_, ns_, options, [this, generation](Result<ObjectList> result) {
    if (generation != generation_ || !running_) return;
    if (!result) {
      retryLater(true, result.error());
      return;
    }
    ++lists_;
    lastError_.clear();
    applyList(std::move(*result));
    openWatch();
  });
}

void Reflector::openWatch() {
  const std::uint64_t generation = generation_;
  ListOptions options = options_;
  options.resourceVersion = resourceVersion_;
  watchOpen_ = true;
  // onClosed can run before watch() returns (an unreadable token file), hence the flag dance.
  auto closedAlready = std::make_shared<bool>(false);
  const WatchId id = api_.watch(
      kind_, ns_, options,
      [this, generation](WatchEvent event) {
        if (generation != generation_ || !running_) return;
        backoff_.reset();
        lastError_.clear();
        applyEvent(std::move(event));
      },
      [this, generation, closedAlready](Result<void> closed) {
        if (generation != generation_ || !running_) return;
        *closedAlready = true;
        watchOpen_ = false;
        ++watchRestarts_;
        if (closed) {
          openWatch();  // the server ended the stream on its timeout: resume at once
        } else if (closed.error().code == ErrorCode::Gone) {
          logInfo("watch version expired, relisting",
                  {{"resource", kind_.plural}, {"resource_version", resourceVersion_}});
          relist();
        } else {
          if (lastError_.empty()) {
            logWarn("watch failed, re-opening it",
                    {{"resource", kind_.plural}, {"error", closed.error().describe()}});
          }
          retryLater(false, closed.error());
        }
      });
  if (!*closedAlready) watch_ = id;
}

void Reflector::applyList(ObjectList list) {
  std::map<std::string, Json::Value> fresh;
  for (auto& item : list.items) {
    if (transform_) transform_(item);
    fresh.emplace(keyOf(item), std::move(item));
  }
  // Deletions first, so that a name re-created under the same key reads as delete + add.
  for (const auto& [key, old] : objects_) {
    if (fresh.count(key) == 0) onChange_(ChangeType::Deleted, old);
  }
  for (const auto& [key, object] : fresh) {
    auto old = objects_.find(key);
    if (old == objects_.end()) {
      onChange_(ChangeType::Added, object);
    } else if (versionOf(old->second) != versionOf(object)) {
      onChange_(ChangeType::Modified, object);
    }
  }
  objects_ = std::move(fresh);
  resourceVersion_ = list.resourceVersion;
  const bool first = !synced_;
  synced_ = true;
  if (first && onSynced_) onSynced_();
}

void Reflector::applyEvent(WatchEvent event) {
  if (event.type == WatchEventType::Opened) return;  // live again: the caller cleared lastError_
  const std::string version = versionOf(event.object);
  if (!version.empty()) resourceVersion_ = version;
  if (event.type == WatchEventType::Bookmark) return;
  if (transform_) transform_(event.object);
  const std::string key = keyOf(event.object);
  if (event.type == WatchEventType::Deleted) {
    objects_.erase(key);
    onChange_(ChangeType::Deleted, event.object);
    return;
  }
  const bool known = objects_.count(key) != 0;
  Json::Value& kept = objects_[key];
  kept = std::move(event.object);
  onChange_(known ? ChangeType::Modified : ChangeType::Added, kept);
}

}  // namespace eni
