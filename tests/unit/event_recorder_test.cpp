// EventRecorder: one Event per distinct occurrence, repeats aggregated into it, similar messages
// combined, writes rate limited per object, bookkeeping bounded, failures swallowed.
#include "agent/kube/event_recorder.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>

#include "agent/base/json.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;
using testing::FakeKubeApi;
using testing::ManualScheduler;

/// Holds create and patch answers until the test releases them, so writes stay in flight.
class DeferredKube final : public KubeApi {
 public:
  explicit DeferredKube(FakeKubeApi& inner) : inner_(inner) {}
  void list(const ResourceKind& k, const std::string& ns, const ListOptions& o,
            Callback<ObjectList> done) override {
    inner_.list(k, ns, o, std::move(done));
  }
  WatchId watch(const ResourceKind& k, const std::string& ns, const ListOptions& o,
                std::function<void(WatchEvent)> e, std::function<void(Result<void>)> c) override {
    return inner_.watch(k, ns, o, std::move(e), std::move(c));
  }
  void cancelWatch(WatchId id) override { inner_.cancelWatch(id); }
  void get(const ObjectRef& ref, Callback<Json::Value> done) override { inner_.get(ref, done); }
  void patch(const ObjectRef& ref, PatchType type, const Json::Value& body,
             const PatchOptions& options, Callback<Json::Value> done) override {
    held.push_back([=, this] { inner_.patch(ref, type, body, options, done); });
  }
  void create(const ObjectRef& ref, const Json::Value& object,
              Callback<Json::Value> done) override {
    held.push_back([=, this] { inner_.create(ref, object, done); });
  }
  void update(const ObjectRef& ref, const Json::Value& object,
              Callback<Json::Value> done) override {
    held.push_back([=, this] { inner_.update(ref, object, done); });
  }
  void remove(const ObjectRef& ref, Callback<Json::Value> done) override {
    held.push_back([=, this] { inner_.remove(ref, done); });
  }
  void releaseAll() {
    while (!held.empty()) {
      auto next = std::move(held.front());
      held.pop_front();
      next();
    }
  }
  std::deque<std::function<void()>> held;

 private:
  FakeKubeApi& inner_;
};

class EventRecorderTest : public ::testing::Test {
 protected:
  EventRecorderTest() { kube.storeObjects = true; }

  static EventRecorderOptions options() {
    EventRecorderOptions o;
    o.nodeName = "node-a";
    return o;
  }
  static ObjectReference pod(const std::string& name) {
    ObjectMeta meta;
    meta.ns = "team-a";
    meta.name = name;
    meta.uid = "uid-" + name;
    return ObjectReference::pod(meta);
  }
  std::vector<Json::Value> events() const {
    std::vector<Json::Value> out;
    for (const auto& [key, object] : kube.objects) {
      if (key.rfind("events/", 0) == 0) out.push_back(object);
    }
    return out;
  }
  std::size_t writes() const {
    return static_cast<std::size_t>(kube.creates) + kube.patches.size();
  }

  FakeKubeApi kube;
  ManualScheduler clock;
  EventRecorder recorder{kube, clock, options()};
};

TEST_F(EventRecorderTest, CreatesAnEventInThePodsNamespaceWithEveryField) {
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "CreateTags was refused");
  auto all = events();
  ASSERT_EQ(all.size(), 1u);
  const Json::Value& e = all[0];
  EXPECT_EQ(e["metadata"]["generateName"].asString(), "web.");
  EXPECT_EQ(e["metadata"]["namespace"].asString(), "team-a");
  EXPECT_EQ(kube.objects.count("events/team-a/web.1"), 1u) << "created in the pod's namespace";
  EXPECT_EQ(e["involvedObject"]["kind"].asString(), "Pod");
  EXPECT_EQ(e["involvedObject"]["apiVersion"].asString(), "v1");
  EXPECT_EQ(e["involvedObject"]["name"].asString(), "web");
  EXPECT_EQ(e["involvedObject"]["namespace"].asString(), "team-a");
  EXPECT_EQ(e["involvedObject"]["uid"].asString(), "uid-web");
  EXPECT_EQ(e["reason"].asString(), "TaggingFailed");
  EXPECT_EQ(e["message"].asString(), "CreateTags was refused");
  EXPECT_EQ(e["type"].asString(), "Warning");
  EXPECT_EQ(e["source"]["component"].asString(), "eni-agent");
  EXPECT_EQ(e["source"]["host"].asString(), "node-a");
  EXPECT_EQ(e["reportingComponent"].asString(), "eni-agent");
  EXPECT_EQ(e["reportingInstance"].asString(), "node-a");
  EXPECT_EQ(e["count"].asInt(), 1);
  EXPECT_EQ(e["firstTimestamp"].asString(), formatTimestamp(clock.wallSeconds()));
  EXPECT_EQ(e["lastTimestamp"].asString(), e["firstTimestamp"].asString());
  EXPECT_EQ(recorder.stats().created, 1u);
  EXPECT_EQ(recorder.inFlight(), 0u);
}

TEST_F(EventRecorderTest, ClusterScopedObjectsEventsGoToDefault) {
  ObjectMeta meta;
  meta.name = "fast-path";
  meta.uid = "uid-n";
  recorder.record(ObjectReference::nodeEni(meta), EventType::Warning, "NodeENIInvalid",
                  "node node-a: no such subnet");
  ASSERT_EQ(kube.objects.count("events/default/fast-path.1"), 1u);
  const Json::Value& e = kube.objects["events/default/fast-path.1"];
  EXPECT_EQ(e["metadata"]["namespace"].asString(), "default");
  EXPECT_EQ(e["involvedObject"]["kind"].asString(), "NodeENI");
  EXPECT_EQ(e["involvedObject"]["apiVersion"].asString(), "networking.k8s.aws/v1alpha1");
  EXPECT_FALSE(e["involvedObject"].isMember("namespace"));
}

TEST_F(EventRecorderTest, ARepeatWithinTheWindowUpdatesTheEventsCount) {
  for (int i = 0; i < 3; ++i) {
    recorder.record(pod("web"), EventType::Normal, "TagsApplied", "the ENI carries the pod's tags");
    clock.advance(minutes(1));
  }
  EXPECT_EQ(kube.creates, 1);
  ASSERT_EQ(kube.patches.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& [ref, body] = kube.patches[i];
    EXPECT_EQ(ref.kind.plural, "events");
    EXPECT_EQ(ref.ns, "team-a");
    EXPECT_EQ(ref.name, "web.1");
    EXPECT_EQ(kube.patchKinds[i].first, PatchType::Strategic);
    EXPECT_EQ(body["count"].asInt(), static_cast<int>(i) + 2);
    EXPECT_EQ(body.getMemberNames().size(), 2u) << toJson(body) << ": count and lastTimestamp";
  }
  EXPECT_EQ(kube.patches[1].second["lastTimestamp"].asString(),
            formatTimestamp(clock.wallSeconds() - 60));
  EXPECT_EQ(recorder.stats().updated, 2u);
}

TEST_F(EventRecorderTest, ARepeatAfterTheWindowCreatesANewEvent) {
  recorder.record(pod("web"), EventType::Normal, "TagsApplied", "applied");
  clock.advance(minutes(11));
  recorder.record(pod("web"), EventType::Normal, "TagsApplied", "applied");
  EXPECT_EQ(kube.creates, 2);
  EXPECT_TRUE(kube.patches.empty());
}

TEST_F(EventRecorderTest, AnotherTypeReasonOrMessageIsAnotherEvent) {
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "one");
  recorder.record(pod("web"), EventType::Normal, "TaggingFailed", "one");
  recorder.record(pod("web"), EventType::Warning, "ENILookupFailed", "one");
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "two");
  recorder.record(pod("api"), EventType::Warning, "TaggingFailed", "one");
  EXPECT_EQ(kube.creates, 5);
  EXPECT_TRUE(kube.patches.empty());
}

TEST_F(EventRecorderTest, ALoopCannotWriteAnEventPerPass) {
  // A pass a second that reports the same failure every time.
  for (int pass = 0; pass < 100; ++pass) {
    recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
    clock.advance(seconds(1));
  }
  EXPECT_EQ(writes(), 25u) << "the burst, then nothing for 5 minutes";
  EXPECT_EQ(recorder.stats().throttled, 75u);
  clock.advance(minutes(5));
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
  EXPECT_EQ(writes(), 26u) << "one more per 5 minutes";
  EXPECT_EQ(kube.creates, 1);
  ASSERT_FALSE(kube.patches.empty());
  EXPECT_EQ(kube.patches.back().second["count"].asInt(), 101)
      << "the throttled repeats are counted into the next write";
}

TEST_F(EventRecorderTest, TheRateLimitIsPerObject) {
  for (int i = 0; i < 40; ++i) recorder.record(pod("web"), EventType::Normal, "TagsApplied", "x");
  EXPECT_EQ(writes(), 25u);
  recorder.record(pod("api"), EventType::Normal, "TagsApplied", "x");
  EXPECT_EQ(writes(), 26u);
  EXPECT_EQ(kube.creates, 2);
}

TEST_F(EventRecorderTest, MessagesThatDifferEachTimeAreCombinedIntoOneEvent) {
  // An error text with a new request ID on each pass.
  for (int pass = 0; pass < 20; ++pass) {
    recorder.record(pod("web"), EventType::Warning, "TaggingFailed",
                    "refused (request-id " + std::to_string(pass) + ")");
    clock.advance(seconds(10));
  }
  EXPECT_EQ(kube.creates, 10) << "nine Events of their own, then one combined";
  ASSERT_EQ(kube.patches.size(), 10u);
  const Json::Value& combined = kube.objects["events/team-a/web.10"];
  EXPECT_EQ(combined["message"].asString(),
            "(combined from similar events): refused (request-id 9)");
  EXPECT_EQ(kube.patches.back().second["message"].asString(),
            "(combined from similar events): refused (request-id 19)");
  EXPECT_EQ(kube.patches.back().second["count"].asInt(), 11);
}

TEST_F(EventRecorderTest, BookkeepingIsBounded) {
  for (int i = 0; i < 5000; ++i) {
    recorder.record(pod("p" + std::to_string(i)), EventType::Normal, "TagsApplied", "x");
  }
  EXPECT_EQ(kube.creates, 5000);
  EXPECT_EQ(recorder.trackedEvents(), 4096u);
}

TEST_F(EventRecorderTest, FailuresAreCountedAndSwallowed) {
  kube.failNext.push_back(Error{ErrorCode::Permission, "events is forbidden"});
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
  EXPECT_EQ(recorder.stats().failed, 1u);
  EXPECT_EQ(recorder.stats().created, 0u);
  EXPECT_TRUE(events().empty());
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
  EXPECT_EQ(recorder.stats().created, 1u) << "the next occurrence creates it";
  EXPECT_EQ(recorder.inFlight(), 0u);
}

TEST_F(EventRecorderTest, AnEventThatExpiredIsCreatedAgain) {
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
  kube.patchAnswer = [](const ObjectRef&, const Json::Value&) -> Result<Json::Value> {
    return fail(ErrorCode::NotFound, "events \"web.1\" not found");
  };
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
  EXPECT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.creates, 2);
  EXPECT_EQ(kube.objects["events/team-a/web.2"]["count"].asInt(), 1);
  kube.patchAnswer = nullptr;
  recorder.record(pod("web"), EventType::Warning, "TaggingFailed", "refused");
  ASSERT_EQ(kube.patches.size(), 2u);
  EXPECT_EQ(kube.patches[1].first.name, "web.2") << "the new Event takes the repeats";
}

TEST_F(EventRecorderTest, RepeatsWhileAWriteIsInFlightGoIntoTheNextWrite) {
  DeferredKube deferred(kube);
  EventRecorder slow(deferred, clock, options());
  slow.record(pod("web"), EventType::Normal, "TagsApplied", "x");
  slow.record(pod("web"), EventType::Normal, "TagsApplied", "x");
  slow.record(pod("web"), EventType::Normal, "TagsApplied", "x");
  EXPECT_EQ(deferred.held.size(), 1u) << "one write in flight per Event";
  EXPECT_EQ(slow.inFlight(), 1u);
  EXPECT_EQ(slow.stats().absorbed, 2u);
  deferred.releaseAll();
  EXPECT_EQ(slow.inFlight(), 0u);
  slow.record(pod("web"), EventType::Normal, "TagsApplied", "x");
  deferred.releaseAll();
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patches[0].second["count"].asInt(), 4);
}

TEST_F(EventRecorderTest, AnswersForAForgottenEventAreIgnored) {
  DeferredKube deferred(kube);
  EventRecorderOptions small = options();
  small.maxKeys = 2;
  EventRecorder slow(deferred, clock, small);
  slow.record(pod("a"), EventType::Normal, "TagsApplied", "x");
  slow.record(pod("b"), EventType::Normal, "TagsApplied", "x");
  slow.record(pod("c"), EventType::Normal, "TagsApplied", "x");  // evicts a, in flight
  EXPECT_EQ(slow.trackedEvents(), 2u);
  deferred.releaseAll();
  EXPECT_EQ(slow.stats().created, 3u);
  EXPECT_EQ(slow.inFlight(), 0u);
  slow.record(pod("a"), EventType::Normal, "TagsApplied", "x");
  deferred.releaseAll();
  EXPECT_EQ(kube.creates, 4) << "a was forgotten: a new Event";
}

}  // namespace
}  // namespace eni
