#pragma once

#include <cstddef>
#include <deque>
#include <functional>

#include "agent/kube/kube_api.h"

namespace eni {

/// A KubeApi that keeps at most `limit` writes (patch, create, update, remove) in flight on `inner`
/// and queues the rest in order. A node agent that sends hundreds at once (110 pods synced in one
/// pass: last-applied, condition and event each) only meets the API server's in-flight limit
/// (HTTP 429) and crowds out other clients. Reads and watches pass straight through. Writes to
/// Node objects (the agent writes only its own, one at a time: the node-state patch the tagger's
/// write-ahead waits on) go out at once, beside the limit: behind a burst's pod writes, the next
/// pass's tags would wait for them. While one is in flight no queued write starts, so that the
/// API server answers it without the agent's own pod writes beside it. Loop thread only, like the
/// client it wraps.
class BoundedWrites final : public KubeApi {
 public:
  BoundedWrites(KubeApi& inner, std::size_t limit) : inner_(inner), limit_(limit) {}

  void list(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
            Callback<ObjectList> done) override {
    inner_.list(kind, ns, options, std::move(done));
  }
  WatchId watch(const ResourceKind& kind, const std::string& ns, const ListOptions& options,
                std::function<void(WatchEvent)> onEvent,
                std::function<void(Result<void>)> onClosed) override {
    return inner_.watch(kind, ns, options, std::move(onEvent), std::move(onClosed));
  }
  void cancelWatch(WatchId id) override { inner_.cancelWatch(id); }
  void get(const ObjectRef& ref, Callback<Json::Value> done) override {
    inner_.get(ref, std::move(done));
  }
  void patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
             const PatchOptions& options, Callback<Json::Value> done) override;
  void create(const ObjectRef& ref, const Json::Value& object, Callback<Json::Value> done) override;
  void update(const ObjectRef& ref, const Json::Value& object, Callback<Json::Value> done) override;
  void remove(const ObjectRef& ref, Callback<Json::Value> done) override;

  /// Writes in flight within the limit (Node writes are not counted).
  std::size_t inFlight() const { return inFlight_; }
  std::size_t queued() const { return queue_.size(); }

 private:
  using Send = std::function<void(Callback<Json::Value>)>;
  void submit(const ObjectRef& ref, Send send, Callback<Json::Value> done);
  void start(const Send& send, Callback<Json::Value> done);
  void startQueued();

  KubeApi& inner_;
  std::size_t limit_;
  std::size_t inFlight_ = 0;
  std::size_t nodeInFlight_ = 0;
  std::deque<std::pair<Send, Callback<Json::Value>>> queue_;
};

}  // namespace eni
