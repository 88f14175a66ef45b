#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/kube/kube_api.h"

namespace eni::testing {

/// A stateful KubeApi for unit tests: the test queues list results and drives watch streams.
/// Calls complete only when the test says so, so ordering is explicit.
class FakeKubeApi final : public KubeApi {
 public:
  struct PendingList {
    ResourceKind kind;
    ListOptions options;
    Callback<ObjectList> done;
  };
  struct OpenWatch {
    WatchId id;
    ResourceKind kind;
    ListOptions options;
    std::function<void(WatchEvent)> onEvent;
    std::function<void(Result<void>)> onClosed;
  };

  void list(const ResourceKind& kind, const std::string&, const ListOptions& options,
            Callback<ObjectList> done) override {
    lists.push_back({kind, options, std::move(done)});
  }
  WatchId watch(const ResourceKind& kind, const std::string&, const ListOptions& options,
                std::function<void(WatchEvent)> onEvent,
                std::function<void(Result<void>)> onClosed) override {
    const WatchId id = nextWatch_++;
    watches[id] = {id, kind, options, std::move(onEvent), std::move(onClosed)};
    watchHistory.push_back(options);
    return id;
  }
  void cancelWatch(WatchId id) override {
    watches.erase(id);
    ++cancelled;
  }
  void get(const ObjectRef& ref, Callback<Json::Value> done) override {
    ++gets;
    if (auto e = injected()) return done(fail(*e));
    if (!storeObjects) return done(fail(ErrorCode::NotFound, "fake: get not scripted"));
    auto it = objects.find(keyOf(ref));
    if (it == objects.end()) return done(fail(ErrorCode::NotFound, "fake: not found"));
    done(it->second);
  }
  void patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
             const PatchOptions& options, Callback<Json::Value> done) override {
    patches.emplace_back(ref, body);
    patchKinds.emplace_back(type, options);
    if (ref.subresource == "status" && failStatusPatches > 0) {
      --failStatusPatches;
      done(fail(ErrorCode::Transient, "fake: injected status patch failure"));
      return;
    }
    if (holdPatch && holdPatch(ref)) {
      held.push_back([this, ref, body, done = std::move(done)] {
        done(patchAnswer ? patchAnswer(ref, body) : Result<Json::Value>(body));
      });
      return;
    }
    if (patchAnswer) return done(patchAnswer(ref, body));
    done(body);
  }
  /// Answers the oldest held patch (patchAnswer then sees it); false when none is held.
  bool releaseHeld() {
    if (held.empty()) return false;
    auto answer = std::move(held.front());
    held.pop_front();
    answer();
    return true;
  }
  void create(const ObjectRef& ref, const Json::Value& object,
              Callback<Json::Value> done) override {
    ++creates;
    if (auto e = injected()) return done(fail(*e));
    if (!storeObjects) return done(object);
    ObjectRef named = ref;
    named.name = object["metadata"]["name"].asString();
    Json::Value stored = object;
    if (named.name.empty() && object["metadata"].isMember("generateName")) {
      // As the API server: the prefix and a suffix of its own.
      named.name = object["metadata"]["generateName"].asString() + std::to_string(++generated_);
      stored["metadata"]["name"] = named.name;
    }
    if (objects.count(keyOf(named)) != 0) return done(fail(ErrorCode::Conflict, "fake: exists"));
    done(store(named, stored));
  }
  void update(const ObjectRef& ref, const Json::Value& object,
              Callback<Json::Value> done) override {
    ++updates;
    updateBodies.emplace_back(ref, object);
    if (auto e = injected()) return done(fail(*e));
    if (!storeObjects) return done(object);
    auto it = objects.find(keyOf(ref));
    if (it == objects.end()) return done(fail(ErrorCode::NotFound, "fake: not found"));
    const std::string rv = object["metadata"].get("resourceVersion", "").asString();
    if (!rv.empty() && rv != it->second["metadata"]["resourceVersion"].asString())
      return done(fail(ErrorCode::Conflict, "fake: the object has been modified"));
    done(store(ref, object));
  }

  void remove(const ObjectRef& ref, Callback<Json::Value> done) override {
    ++removes;
    removed.push_back(ref);
    if (onRemove) onRemove(ref);
    if (auto e = injected()) return done(fail(*e));
    if (!storeObjects) return done(Json::Value(Json::objectValue));
    auto it = objects.find(keyOf(ref));
    if (it == objects.end()) return done(fail(ErrorCode::NotFound, "fake: not found"));
    Json::Value gone = it->second;
    objects.erase(it);
    done(gone);
  }

  /// Writes `object` as the API server would: a new resourceVersion; returns what was stored.
  Json::Value store(const ObjectRef& ref, Json::Value object) {
    object["metadata"]["resourceVersion"] = std::to_string(++lastVersion_);
    objects[keyOf(ref)] = object;
    return object;
  }
  static std::string keyOf(const ObjectRef& ref) {
    return ref.kind.plural + "/" + ref.ns + "/" + ref.name;
  }

  /// Completes the oldest pending list.
  void answerList(Result<ObjectList> result) {
    auto pending = std::move(lists.front());
    lists.pop_front();
    pending.done(std::move(result));
  }
  /// The single open watch; the test fails (aborts) if there is not exactly one.
  OpenWatch& onlyWatch() {
    if (watches.size() != 1) std::abort();
    return watches.begin()->second;
  }
  void closeOnlyWatch(Result<void> how) {
    auto w = std::move(onlyWatch());
    watches.erase(w.id);
    w.onClosed(std::move(how));
  }

  std::deque<PendingList> lists;
  std::map<WatchId, OpenWatch> watches;
  std::vector<ListOptions> watchHistory;
  std::vector<std::pair<ObjectRef, Json::Value>> patches;       // every patch, failed ones too
  std::vector<std::pair<PatchType, PatchOptions>> patchKinds;   // ... their types and options
  std::vector<std::pair<ObjectRef, Json::Value>> updateBodies;  // every update, failed ones too
  /// When set, the answer to each patch (every patch is still recorded); else the body echoed.
  std::function<Result<Json::Value>(const ObjectRef&, const Json::Value&)> patchAnswer;
  /// Patches it holds in flight, unanswered until releaseHeld(): a slow API server.
  std::function<bool(const ObjectRef&)> holdPatch;
  std::deque<std::function<void()>> held;
  std::function<void(const ObjectRef&)> onRemove;  // runs for every remove, before its answer
  int failStatusPatches = 0;  // this many patches of a status subresource fail (Transient)
  int cancelled = 0;
  /// When set, get/create/update act on `objects` (keyed by keyOf) like the API server: create
  /// names an object by its generateName and a number, refuses an existing name (Conflict), update
  /// a stale metadata.resourceVersion (Conflict) or a missing object (NotFound). Else get is
  /// NotFound and create/update echo the object.
  bool storeObjects = false;
  std::map<std::string, Json::Value> objects;
  /// Each of the next get/create/update/remove calls fails with the first of these, which is
  /// removed.
  std::deque<Error> failNext;
  int gets = 0;
  int creates = 0;
  int updates = 0;
  int removes = 0;
  std::vector<ObjectRef> removed;  // every remove, failed ones too

 private:
  std::optional<Error> injected() {
    if (failNext.empty()) return std::nullopt;
    Error e = failNext.front();
    failNext.pop_front();
    return e;
  }
  WatchId nextWatch_ = 1;
  std::uint64_t lastVersion_ = 0;
  std::uint64_t generated_ = 0;
};

/// {"metadata":{"namespace":ns,"name":name,"resourceVersion":rv}, ...extra}
Json::Value makeObject(const std::string& ns, const std::string& name, const std::string& rv);

}  // namespace eni::testing
