#include "agent/kube/bounded_writes.h"

#include <utility>

namespace eni {

void BoundedWrites::patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
                          const PatchOptions& options, Callback<Json::Value> done) {
  submit(
      ref,
      [this, ref, type, body, options](Callback<Json::Value> cb) {
        inner_.patch(ref, type, body, options, std::move(cb));
      },
      std::move(done));
}

void BoundedWrites::create(const ObjectRef& ref, const Json::Value& object,
                           Callback<Json::Value> done) {
  submit(
      ref,
      [this, ref, object](Callback<Json::Value> cb) { inner_.create(ref, object, std::move(cb)); },
      std::move(done));
}

void BoundedWrites::update(const ObjectRef& ref, const Json::Value& object,
                           Callback<Json::Value> done) {
  submit(
      ref,
      [this, ref, object](Callback<Json::Value> cb) { inner_.update(ref, object, std::move(cb)); },
      std::move(done));
}

void BoundedWrites::remove(const ObjectRef& ref, Callback<Json::Value> done) {
  submit(
      ref, [this, ref](Callback<Json::Value> cb) { inner_.remove(ref, std::move(cb)); },
      std::move(done));
}

void BoundedWrites::submit(const ObjectRef& ref, Send send, Callback<Json::Value> done) {
  const ResourceKind nodes = ResourceKind::nodes();
  const bool toNode = ref.kind.apiPrefix == nodes.apiPrefix && ref.kind.plural == nodes.plural;
  if (toNode) {
    // Not counted: the pod writes keep their slots. Those queued wait for its answer.
    ++nodeInFlight_;
    return send([this, done = std::move(done)](Result<Json::Value> r) {
      --nodeInFlight_;
      startQueued();
      done(std::move(r));
    });
  }
  if (inFlight_ < limit_ && nodeInFlight_ == 0) return start(send, std::move(done));
  queue_.emplace_back(std::move(send), std::move(done));
}

void BoundedWrites::startQueued() {
  while (!queue_.empty() && inFlight_ < limit_ && nodeInFlight_ == 0) {
    auto next = std::move(queue_.front());
    queue_.pop_front();
    start(next.first, std::move(next.second));
  }
}

void BoundedWrites::start(const Send& send, Callback<Json::Value> done) {
  ++inFlight_;
  send([this, done = std::move(done)](Result<Json::Value> r) {
    --inFlight_;
    // The next write goes out before this answer is handled, so a caller that writes again
    // from its callback queues behind those already waiting.
    startQueued();
    done(std::move(r));
  });
}

}  // namespace eni
