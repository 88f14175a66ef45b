#include "agent/kube/reflector.h"

#include <gtest/gtest.h>

#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeKubeApi;
using testing::makeObject;
using testing::ManualScheduler;

struct Change {
  ChangeType type;
  std::string key;
  std::string version;
  bool operator==(const Change&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Change& c) {
  return os << static_cast<int>(c.type) << ":" << c.key << "@" << c.version;
}

class ReflectorTest : public ::testing::Test {
 protected:
  ReflectorTest()
      : reflector_(
            api_, scheduler_, ResourceKind::pods(), "", ListOptions{"spec.nodeName=n1", "", "", 0},
            [this](ChangeType t, const Json::Value& o) {
              changes_.push_back(
                  {t, Reflector::keyOf(o), o["metadata"]["resourceVersion"].asString()});
            },
            7) {}

  ObjectList listOf(std::vector<Json::Value> items, std::string rv) {
    ObjectList l;
    l.items = std::move(items);
    l.resourceVersion = std::move(rv);
    return l;
  }

  void event(WatchEventType type, const Json::Value& object) {
    api_.onlyWatch().onEvent(WatchEvent{type, object});
  }

  FakeKubeApi api_;
  ManualScheduler scheduler_;
  std::vector<Change> changes_;
  Reflector reflector_;
};

TEST_F(ReflectorTest, ListsThenWatchesFromTheListVersion) {
  reflector_.start();
  ASSERT_EQ(api_.lists.size(), 1u);
  EXPECT_EQ(api_.lists.front().options.fieldSelector, "spec.nodeName=n1");
  EXPECT_FALSE(reflector_.synced());
  api_.answerList(listOf({makeObject("ns", "a", "5")}, "9"));
  EXPECT_TRUE(reflector_.synced());
  EXPECT_EQ(changes_, (std::vector<Change>{{ChangeType::Added, "ns/a", "5"}}));
  ASSERT_EQ(api_.watches.size(), 1u);
  EXPECT_EQ(api_.onlyWatch().options.resourceVersion, "9");
  EXPECT_EQ(api_.onlyWatch().options.fieldSelector, "spec.nodeName=n1");
}

TEST_F(ReflectorTest, DeliversWatchEventsInOrderAndBookmarksOnlyMoveTheVersion) {
  reflector_.start();
  api_.answerList(listOf({}, "1"));
  event(WatchEventType::Added, makeObject("ns", "a", "2"));
  event(WatchEventType::Modified, makeObject("ns", "a", "3"));
  event(WatchEventType::Bookmark, makeObject("", "", "7"));
  event(WatchEventType::Deleted, makeObject("ns", "a", "8"));
  EXPECT_EQ(changes_, (std::vector<Change>{{ChangeType::Added, "ns/a", "2"},
                                           {ChangeType::Modified, "ns/a", "3"},
                                           {ChangeType::Deleted, "ns/a", "8"}}));
  EXPECT_EQ(reflector_.resourceVersion(), "8");
  EXPECT_TRUE(reflector_.objects().empty());
}

TEST_F(ReflectorTest, ServerTimeoutReopensAtOnceFromTheLastVersion) {
  reflector_.start();
  api_.answerList(listOf({}, "1"));
  event(WatchEventType::Bookmark, makeObject("", "", "40"));
  api_.closeOnlyWatch({});
  ASSERT_EQ(api_.watches.size(), 1u);
  EXPECT_EQ(api_.onlyWatch().options.resourceVersion, "40");
  EXPECT_EQ(reflector_.lists(), 1u);
  EXPECT_EQ(reflector_.watchRestarts(), 1u);
}

TEST_F(ReflectorTest, DroppedStreamRetriesAfterBackoffWithoutRelisting) {
  reflector_.start();
  api_.answerList(listOf({}, "1"));
  event(WatchEventType::Added, makeObject("ns", "a", "3"));
  api_.closeOnlyWatch(fail(ErrorCode::Transient, "connection reset"));
  EXPECT_TRUE(api_.watches.empty());
  EXPECT_EQ(scheduler_.pending(), 1u);
  EXPECT_LE(scheduler_.nextDelay().count(), 500);  // first attempt: within the 500 ms base
  EXPECT_EQ(reflector_.lastError(), "connection reset");
  scheduler_.advance(Duration(500));
  ASSERT_EQ(api_.watches.size(), 1u);
  EXPECT_EQ(api_.onlyWatch().options.resourceVersion, "3");
  EXPECT_TRUE(api_.lists.empty());
}

// Readiness reads live(): a watch that failed (a stalled connection, an API server gone) is not
// live until the API server answers the re-opened one; the server's own timeout is not a failure.
TEST_F(ReflectorTest, NotLiveFromAFailedWatchUntilTheReopenedOneIsAccepted) {
  reflector_.start();
  EXPECT_FALSE(reflector_.live()) << "not before the first list";
  api_.answerList(listOf({}, "1"));
  EXPECT_TRUE(reflector_.live());
  api_.closeOnlyWatch({});  // the server's timeout: re-opened at once, still live
  EXPECT_TRUE(reflector_.live());
  api_.closeOnlyWatch(fail(ErrorCode::Transient, "no data for 60s; the connection stalled"));
  EXPECT_FALSE(reflector_.live());
  scheduler_.advance(Duration(500));
  ASSERT_EQ(api_.watches.size(), 1u);
  EXPECT_FALSE(reflector_.live()) << "asked again, not answered yet";
  event(WatchEventType::Opened, Json::Value());
  EXPECT_TRUE(reflector_.live());
  EXPECT_TRUE(changes_.empty()) << "Opened carries no object";
  EXPECT_EQ(reflector_.objects().size(), 0u);
  EXPECT_EQ(reflector_.resourceVersion(), "1");
}

TEST_F(ReflectorTest, BackoffGrowsAndIsCapped) {
  reflector_.start();
  api_.answerList(listOf({}, "1"));
  Duration longest(0);
  for (int i = 0; i < 12; ++i) {
    api_.closeOnlyWatch(fail(ErrorCode::Transient, "down"));
    longest = std::max(longest, scheduler_.nextDelay());
    EXPECT_LE(scheduler_.nextDelay().count(), 30000);
    scheduler_.advance(Duration(30000));
  }
  EXPECT_GT(longest.count(), 500);  // grew past the base at some point
}

TEST_F(ReflectorTest, GoneRelistsAndTurnsTheDifferenceIntoChanges) {
  reflector_.start();
  api_.answerList(listOf({makeObject("ns", "keep", "1"), makeObject("ns", "change", "1"),
                          makeObject("ns", "gone", "1")},
                         "1"));
  changes_.clear();
  api_.closeOnlyWatch(fail(ErrorCode::Gone, "too old resource version"));
  ASSERT_EQ(api_.lists.size(), 1u);  // relist at once, no backoff
  api_.answerList(listOf({makeObject("ns", "keep", "1"), makeObject("ns", "change", "5"),
                          makeObject("ns", "new", "6")},
                         "6"));
  EXPECT_EQ(changes_, (std::vector<Change>{{ChangeType::Deleted, "ns/gone", "1"},
                                           {ChangeType::Modified, "ns/change", "5"},
                                           {ChangeType::Added, "ns/new", "6"}}));
  EXPECT_EQ(reflector_.lists(), 2u);
  EXPECT_EQ(api_.onlyWatch().options.resourceVersion, "6");
}

TEST_F(ReflectorTest, FailedListRetriesTheListAndStaysUnsynced) {
  reflector_.start();
  api_.answerList(fail(ErrorCode::Permission, "pods is forbidden"));
  EXPECT_FALSE(reflector_.synced());
  EXPECT_EQ(reflector_.lastError(), "pods is forbidden");
  EXPECT_TRUE(api_.watches.empty());
  scheduler_.advance(Duration(500));
  ASSERT_EQ(api_.lists.size(), 1u);
  api_.answerList(listOf({}, "3"));
  EXPECT_TRUE(reflector_.synced());
  EXPECT_TRUE(reflector_.lastError().empty());
}

TEST_F(ReflectorTest, StopCancelsAndStartResumesFromTheSameVersion) {
  reflector_.start();
  api_.answerList(listOf({}, "4"));
  reflector_.stop();
  EXPECT_EQ(api_.cancelled, 1);
  EXPECT_TRUE(api_.watches.empty());
  reflector_.start();
  EXPECT_TRUE(api_.lists.empty());
  EXPECT_EQ(api_.onlyWatch().options.resourceVersion, "4");
}

TEST_F(ReflectorTest, LateAnswersOfAStoppedRunAreIgnored) {
  reflector_.start();
  reflector_.stop();
  api_.answerList(listOf({makeObject("ns", "a", "1")}, "1"));
  EXPECT_TRUE(changes_.empty());
  EXPECT_FALSE(reflector_.synced());
}

TEST_F(ReflectorTest, TransformTrimsListedAndWatchedObjectsBeforeTheyAreKeptAndHandedOn) {
  std::vector<std::string> handedOnSpecs;
  Reflector reflector(
      api_, scheduler_, ResourceKind::pods(), "", ListOptions{},
      [&](ChangeType, const Json::Value& o) {
        handedOnSpecs.push_back(o["spec"].toStyledString());
      },
      7);
  reflector.setTransform([](Json::Value& o) { o["spec"].removeMember("big"); });
  auto withBig = [](const std::string& name, const std::string& rv) {
    Json::Value o = makeObject("ns", name, rv);
    o["spec"]["big"] = std::string(1000, 'x');
    o["spec"]["small"] = 1;
    return o;
  };
  reflector.start();
  api_.answerList(listOf({withBig("a", "1")}, "1"));
  api_.onlyWatch().onEvent(WatchEvent{WatchEventType::Added, withBig("b", "2")});
  api_.onlyWatch().onEvent(WatchEvent{WatchEventType::Deleted, withBig("a", "3")});
  ASSERT_EQ(handedOnSpecs.size(), 3u);
  for (const auto& spec : handedOnSpecs) {
    EXPECT_EQ(spec.find("xxxx"), std::string::npos) << spec;
    EXPECT_NE(spec.find("small"), std::string::npos) << spec;
  }
  ASSERT_EQ(reflector.objects().size(), 1u);
  EXPECT_FALSE(reflector.objects().at("ns/b")["spec"].isMember("big"));
  EXPECT_EQ(reflector.resourceVersion(), "3");
}

}  // namespace
}  // namespace eni
