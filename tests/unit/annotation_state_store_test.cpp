// AnnotationStateStore: the node state's keeper in Kubernetes mode, against FakeKubeApi and a
// manual scheduler. Loading, debounced writes only when changed, write-aheads answered once a
// patch carries them, backoff after refusals, rewrites when the annotation is removed.
#include "agent/state/annotation_state_store.h"

#include <gtest/gtest.h>

#include <memory>

#include "agent/base/log.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

int nodePatches(const testing::FakeKubeApi& kube) {
  int n = 0;
  for (const auto& [ref, body] : kube.patches) n += ref.kind.plural == "nodes";
  return n;
}

TEST(AnnotationStateStore, RecordsTheEniManagersAttachmentsOnce) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);

  const std::vector<AttachmentRecord> attachments = {
      {"multus", "eni-1", "eni-attach-1", 2, "", 9001, AttachmentPhase::Attached}};
  store.update([&](NodeState& s) { s.attachments = attachments; });
  store.update([&](NodeState& s) { s.attachments = attachments; });  // the same: nothing new
  EXPECT_TRUE(kube.patches.empty()) << "debounced";
  scheduler.advance(Duration(1000));
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patches[0].first.kind.plural, "nodes");
  EXPECT_EQ(kube.patches[0].first.name, "n1");
  // Its answer is the whole Node, not read; its echo on the Node watch reuses the text sent.
  EXPECT_TRUE(kube.patchKinds[0].second.discardBody);
  EXPECT_TRUE(kube.patchKinds[0].second.echoed);
  auto state = decodeNodeState(
      kube.patches[0].second["metadata"]["annotations"][kNodeStateAnnotation].asString());
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(state->attachments, attachments);
  store.update([&](NodeState& s) { s.attachments = attachments; });
  scheduler.advance(Duration(1000));
  EXPECT_EQ(kube.patches.size(), 1u) << "written only when it changed";
}

// A write-ahead (the ENI manager's before a create, the tagger's before CreateTags): answered only
// once a patch carrying it succeeded, refused before the node's annotation is loaded or when the
// patch fails, and cleared by the manager's next clean record.
TEST(AnnotationStateStore, TheEniManagersRecordIsAnsweredOnlyOnceAPatchCarriesIt) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  auto lastState = [&] {
    for (auto it = kube.patches.rbegin(); it != kube.patches.rend(); ++it) {
      const auto& a = it->second["metadata"]["annotations"][kNodeStateAnnotation];
      if (a.isString()) return decodeNodeState(a.asString());
    }
    return Result<NodeState>(fail(ErrorCode::NotFound, "no node-state patch"));
  };

  std::vector<bool> answers;
  store.update([&](NodeState& s) { s.creating = {"storage"}; });
  store.writeAhead([&](bool stored) { answers.push_back(stored); });
  EXPECT_EQ(answers, std::vector<bool>{false}) << "the previous run's record is not loaded yet";
  EXPECT_TRUE(kube.patches.empty());

  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  store.update([&](NodeState& s) { s.creating = {"storage"}; });
  store.writeAhead([&](bool stored) {
    // By the time of the answer, the API server holds the record.
    auto state = lastState();
    ASSERT_TRUE(state);
    EXPECT_EQ(state->creating, std::vector<std::string>{"storage"});
    answers.push_back(stored);
  });
  EXPECT_EQ(answers, (std::vector<bool>{false, true}));

  kube.patchAnswer = [](const ObjectRef&, const Json::Value&) -> Result<Json::Value> {
    return fail(ErrorCode::Transient, "injected");
  };
  store.update([&](NodeState& s) { s.creating = {"scratch", "storage"}; });
  store.writeAhead([&](bool stored) { answers.push_back(stored); });
  EXPECT_EQ(answers, (std::vector<bool>{false, true, false}));
  kube.patchAnswer = nullptr;

  store.update([](NodeState& s) {
    s.attachments.clear();
    s.unownedEnis.clear();
    s.creating.clear();
  });  // the manager's clean pass
  scheduler.advance(Duration(2000));
  auto state = lastState();
  ASSERT_TRUE(state);
  EXPECT_TRUE(state->creating.empty());
}

// While the API server refused node patches, the state write was retried every 500 ms: 119
// attempts in a minute from one agent, a reconnect storm across a fleet. It backs off as the
// watches do (0.5 s doubling to 30 s, jittered), and resets once a patch lands.
TEST(AnnotationStateStore, AFailingStateWriteBacksOffInsteadOfRetryingEveryDebounce) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  // A fixed jitter: with full jitter and no floor, a random seed now and then drew retries short
  // enough for more than 12 in the minute, and the test failed without anything being wrong.
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500), 42});
  bool down = true;
  kube.patchAnswer = [&](const ObjectRef& ref, const Json::Value& body) -> Result<Json::Value> {
    if (down && ref.kind.plural == "nodes") return fail(ErrorCode::Transient, "connection refused");
    return body;
  };
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  store.update([&](NodeState& s) {
    s.attachments = {{"multus", "eni-1", "eni-attach-1", 2, "", 9001, AttachmentPhase::Attached}};
  });
  for (int i = 0; i < 600; ++i) scheduler.advance(Duration(100));  // one minute
  const int attempts = nodePatches(kube);
  EXPECT_GE(attempts, 2);
  EXPECT_LE(attempts, 12) << "a minute of a refusing API server, with backoff";
  down = false;
  for (int i = 0; i < 400; ++i) scheduler.advance(Duration(100));  // past the 30 s cap
  const int landed = nodePatches(kube);
  EXPECT_EQ(landed, attempts + 1) << "written once when the server is back, then nothing";
}

// An operator removed the annotation (kubectl annotate node N eni-agent.io/state-): it was not
// written back, and the next restart after a pod deletion leaked that pod's tags.
TEST(AnnotationStateStore, ARemovedOrForeignAnnotationIsWrittenAgainButItsOwnEchoesAreNot) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  store.update([&](NodeState& s) {
    s.attachments = {{"multus", "eni-1", "eni-attach-1", 2, "", 9001, AttachmentPhase::Attached}};
  });
  scheduler.advance(Duration(1000));
  ASSERT_EQ(nodePatches(kube), 1);
  const std::string written =
      kube.patches.back().second["metadata"]["annotations"][kNodeStateAnnotation].asString();
  Json::Value echo = node;
  echo["metadata"]["annotations"][kNodeStateAnnotation] = written;
  store.onNode(ChangeType::Modified, echo);  // the watch shows its own write
  store.onNode(ChangeType::Modified, node);  // an event from before the write, without it
  scheduler.advance(Duration(1000));
  EXPECT_EQ(nodePatches(kube), 2) << "the annotation seen gone is written again";
  store.onNode(ChangeType::Modified, echo);
  scheduler.advance(Duration(1000));
  EXPECT_EQ(nodePatches(kube), 2) << "its own echo is not news";
  Json::Value foreign = node;
  foreign["metadata"]["annotations"][kNodeStateAnnotation] = R"({"version":1,"enis":{}})";
  store.onNode(ChangeType::Modified, foreign);
  scheduler.advance(Duration(1000));
  ASSERT_EQ(nodePatches(kube), 3) << "someone else's content is replaced";
  EXPECT_EQ(kube.patches.back().second["metadata"]["annotations"][kNodeStateAnnotation].asString(),
            written);
}

// The watch can show a patch before the patch's own answer arrives: that is this store's write,
// not someone else's (it was logged as such, and armed a rewrite), and is not written again.
TEST(AnnotationStateStore, ItsPatchSeenBeforeItsAnswerIsNotSomeoneElses) {
  std::vector<std::string> warnings;
  logging::setSink([&](const std::string& line) {
    if (line.find("changed by someone else") != std::string::npos) warnings.push_back(line);
  });
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  kube.patchAnswer = [&](const ObjectRef& ref, const Json::Value& body) -> Result<Json::Value> {
    if (ref.kind.plural == "nodes") {
      Json::Value echo = node;
      echo["metadata"]["annotations"] = body["metadata"]["annotations"];
      store.onNode(ChangeType::Modified, echo);  // the watch event, ahead of the answer
    }
    return body;
  };
  store.update([](NodeState& s) { s.creating = {"storage"}; });
  bool stored = false;
  store.writeAhead([&](bool ok) { stored = ok; });
  EXPECT_TRUE(stored);
  EXPECT_EQ(scheduler.pending(), 0u) << "no rewrite armed";
  scheduler.advance(Duration(5000));
  logging::setSink(nullptr);
  EXPECT_EQ(nodePatches(kube), 1) << "one patch, and no second one for its own echo";
  EXPECT_TRUE(warnings.empty()) << warnings.front();
}

// ---------------------------------------------- large states: eni-agent.io/state-pending

// The Node's annotations as the API server keeps them after each of the store's merge patches.
// Answers the fake's patches as the API server would, keeping the Node.
struct ServerNode {
  Json::Value node;
  explicit ServerNode(testing::FakeKubeApi& kube) {
    node["metadata"]["name"] = "n1";
    kube.patchAnswer = [this](const ObjectRef&, const Json::Value& body) -> Result<Json::Value> {
      apply(body);
      return body;
    };
  }
  void apply(const Json::Value& patch) {
    const Json::Value& set = patch["metadata"]["annotations"];
    for (auto it = set.begin(); it != set.end(); ++it) {
      if (it->isNull())
        node["metadata"]["annotations"].removeMember(it.name());
      else
        node["metadata"]["annotations"][it.name()] = *it;
    }
  }
  std::string value(const char* key) const {
    return node["metadata"]["annotations"].get(key, "").asString();
  }
  Result<NodeState> state() const {
    return decodeNodeState(value(kNodeStateAnnotation), value(kNodeStatePendingAnnotation));
  }
};

// Overlays from 1 KiB: a few records make a large state.
AnnotationStateStore::Options largeStateOptions() {
  AnnotationStateStore::Options options{"n1", Duration(500), 7};
  options.overlayFrom = 1024;
  return options;
}

EniRecord taggedRecord(int i) {
  EniRecord e;
  e.mac = "02:00:00:00:01:" + std::to_string(10 + i);
  e.deviceIndex = 0;
  e.subnet = "subnet-1";
  e.tags = {{"Team", "team-" + std::to_string(i)}, {"CostCenter", "cc-1234"}};
  e.hash = "0123456789abcdef";
  e.pods["default/pod-" + std::to_string(i)] = PodRecord{"uid-" + std::to_string(i), "10.0.0.1"};
  return e;
}

// A node of many ENIs: after the first whole write, a pass's write-ahead patches only the records
// it changed, in eni-agent.io/state-pending, and is answered once that landed; compactAfter later
// the whole state is written again, with the overlay removed in the same patch. What the Node
// holds decodes to the store's state after every patch.
TEST(AnnotationStateStore, ALargeStateWritesWhatChangedThenTheWholeStateAgain) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  ServerNode server(kube);
  auto options = largeStateOptions();
  options.compactAfter = Duration(5000);
  AnnotationStateStore store(kube, scheduler, options);
  store.onNode(ChangeType::Added, server.node);
  store.update([](NodeState& s) {
    s.instanceId = "i-1";
    for (int i = 0; i < 20; ++i) s.enis["eni-" + std::to_string(100 + i)] = taggedRecord(i);
  });
  bool stored = false;
  store.writeAhead([&](bool ok) { stored = ok; });
  ASSERT_TRUE(stored);
  ASSERT_EQ(nodePatches(kube), 1);
  const Json::Value& first = kube.patches.back().second["metadata"]["annotations"];
  EXPECT_TRUE(first[kNodeStateAnnotation].isString()) << "the first write is the whole state";
  EXPECT_TRUE(first.isMember(kNodeStatePendingAnnotation) &&
              first[kNodeStatePendingAnnotation].isNull())
      << "and removes any overlay in the same patch";
  const std::string whole = server.value(kNodeStateAnnotation);

  // One pod's pass: one record, and only the overlay.
  store.update([](NodeState& s) { s.enis["eni-105"].pendingHash = "fedcba9876543210"; });
  stored = false;
  store.writeAhead([&](bool ok) { stored = ok; });
  ASSERT_TRUE(stored);
  ASSERT_EQ(nodePatches(kube), 2);
  const Json::Value& second = kube.patches.back().second["metadata"]["annotations"];
  EXPECT_FALSE(second.isMember(kNodeStateAnnotation)) << "the state itself is not sent again";
  const std::string overlay = second[kNodeStatePendingAnnotation].asString();
  EXPECT_NE(overlay.find("eni-105"), std::string::npos) << overlay;
  EXPECT_EQ(overlay.find("eni-104"), std::string::npos) << overlay;
  EXPECT_LT(overlay.size() * 5, whole.size()) << "a record, not the state";
  auto onServer = server.state();
  ASSERT_TRUE(onServer) << onServer.error().message;
  EXPECT_EQ(*onServer, store.current());

  // A second pass: the overlay carries both records (it is over the same whole state).
  store.update([](NodeState& s) { s.enis.erase("eni-110"); });
  store.writeAhead([](bool) {});
  ASSERT_EQ(nodePatches(kube), 3);
  EXPECT_FALSE(
      kube.patches.back().second["metadata"]["annotations"].isMember(kNodeStateAnnotation));
  onServer = server.state();
  ASSERT_TRUE(onServer) << onServer.error().message;
  EXPECT_EQ(*onServer, store.current());
  EXPECT_EQ(server.value(kNodeStateAnnotation), whole);

  // compactAfter after the first overlay: the whole state, and no overlay.
  scheduler.advance(Duration(4000));
  EXPECT_EQ(nodePatches(kube), 3) << "not before compactAfter";
  scheduler.advance(Duration(2000));
  ASSERT_EQ(nodePatches(kube), 4);
  EXPECT_TRUE(server.value(kNodeStatePendingAnnotation).empty());
  auto compacted = decodeNodeState(server.value(kNodeStateAnnotation));
  ASSERT_TRUE(compacted) << compacted.error().message;
  EXPECT_EQ(*compacted, store.current());
  scheduler.advance(Duration(20000));
  EXPECT_EQ(nodePatches(kube), 4) << "nothing more to write";

  // A clean stop: the whole state at once, and nothing when it is already whole.
  bool done = false;
  store.compactNow([&] { done = true; });
  EXPECT_TRUE(done);
  EXPECT_EQ(nodePatches(kube), 4);
  store.update([](NodeState& s) { s.enis["eni-106"].pendingHash = "fedcba9876543210"; });
  store.writeAhead([](bool) {});
  ASSERT_EQ(nodePatches(kube), 5);
  EXPECT_FALSE(server.value(kNodeStatePendingAnnotation).empty());
  store.update([](NodeState& s) { s.enis.erase("eni-107"); });  // still in the debounce
  done = false;
  store.compactNow([&] { done = true; });
  EXPECT_TRUE(done);
  ASSERT_EQ(nodePatches(kube), 6);
  EXPECT_TRUE(server.value(kNodeStatePendingAnnotation).empty());
  EXPECT_EQ(decodeNodeState(server.value(kNodeStateAnnotation)).value(), store.current());
}

// An overlay never grows past half the state: a pass that changes most records writes the whole
// state instead (what a reader has to apply stays small). A small state is always written whole.
TEST(AnnotationStateStore, AnOverlayOverHalfTheStateOrOnASmallStateIsTheWholeStateInstead) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  AnnotationStateStore store(kube, scheduler, largeStateOptions());
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  auto sentWhole = [&] {
    return kube.patches.back().second["metadata"]["annotations"].isMember(kNodeStateAnnotation);
  };
  store.update([](NodeState& s) { s.enis["eni-1"] = taggedRecord(1); });
  store.writeAhead([](bool) {});
  store.update([](NodeState& s) { s.enis["eni-1"].pendingHash = "x"; });
  store.writeAhead([](bool) {});
  ASSERT_EQ(nodePatches(kube), 2);
  EXPECT_TRUE(sentWhole()) << "under overlayFrom bytes, the state is written whole";
  store.update([](NodeState& s) {
    for (int i = 0; i < 10; ++i) s.enis["eni-" + std::to_string(100 + i)] = taggedRecord(i);
  });
  store.writeAhead([](bool) {});
  store.update([](NodeState& s) {
    for (int i = 0; i < 10; ++i) s.enis["eni-" + std::to_string(100 + i)].tags["Team"] = "new";
  });
  store.writeAhead([](bool) {});
  ASSERT_EQ(nodePatches(kube), 4);
  EXPECT_TRUE(sentWhole()) << "most records changed: the whole state";
  store.update([](NodeState& s) { s.enis["eni-105"].tags["Team"] = "one"; });
  store.writeAhead([](bool) {});
  ASSERT_EQ(nodePatches(kube), 5);
  EXPECT_FALSE(sentWhole()) << "one record of eleven: the overlay";
}

// A restart reads the overlay over the state, and the state catches up with it; an overlay that
// is stale (the state was written over it, as an older agent does after a rollback) is ignored
// and removed; one that a newer agent wrote stops the store as the state of a newer one does.
TEST(AnnotationStateStore, LoadsTheOverlayOverTheStateAndRemovesOneThatIsStale) {
  NodeState written;
  written.instanceId = "i-1";
  for (int i = 0; i < 20; ++i) written.enis["eni-" + std::to_string(100 + i)] = taggedRecord(i);
  const std::string text = *encodeNodeState(written);
  NodeState changed = written;
  changed.enis.erase("eni-101");
  changed.enis["eni-200"] = taggedRecord(99);
  EncodedEniRecords records;
  const std::string overlay =
      encodeNodeStateOverlay(changed, nodeStateBase(text, written), records);

  auto loadedFrom = [&](const std::string& pending, testing::FakeKubeApi& kube,
                        testing::ManualScheduler& scheduler) {
    auto store = std::make_unique<AnnotationStateStore>(kube, scheduler, largeStateOptions());
    Json::Value node;
    node["metadata"]["name"] = "n1";
    node["metadata"]["annotations"][kNodeStateAnnotation] = text;
    node["metadata"]["annotations"][kNodeStatePendingAnnotation] = pending;
    store->onNode(ChangeType::Added, node);
    store->onNode(ChangeType::Modified, node);  // the same again: not news
    return store;
  };
  {
    testing::FakeKubeApi kube;
    testing::ManualScheduler scheduler;
    auto store = loadedFrom(overlay, kube, scheduler);
    EXPECT_EQ(store->current(), changed);
    EXPECT_EQ(nodePatches(kube), 0);
    scheduler.advance(Duration(6000));
    ASSERT_EQ(nodePatches(kube), 1) << "the state catches up with the overlay it loaded";
    const Json::Value& a = kube.patches.back().second["metadata"]["annotations"];
    EXPECT_EQ(decodeNodeState(a[kNodeStateAnnotation].asString()).value(), changed);
    EXPECT_TRUE(a[kNodeStatePendingAnnotation].isNull());
  }
  {
    testing::FakeKubeApi kube;
    testing::ManualScheduler scheduler;
    NodeState other = written;
    other.enis.erase("eni-119");
    const std::string stale =
        encodeNodeStateOverlay(changed, nodeStateBase(*encodeNodeState(other), other), records);
    auto store = loadedFrom(stale, kube, scheduler);
    EXPECT_EQ(store->current(), written) << "the state, without what does not apply over it";
    EXPECT_EQ(store->problem(), "");
    scheduler.advance(Duration(1000));
    ASSERT_EQ(nodePatches(kube), 1) << "the stale overlay is removed";
    const Json::Value& a = kube.patches.back().second["metadata"]["annotations"];
    EXPECT_TRUE(a.isMember(kNodeStatePendingAnnotation) && a[kNodeStatePendingAnnotation].isNull());
    EXPECT_EQ(a[kNodeStateAnnotation].asString(), text);
  }
  {
    testing::FakeKubeApi kube;
    testing::ManualScheduler scheduler;
    std::string newer = overlay;
    newer.replace(newer.find(R"("version":1)"), 11, R"("version":3)");
    auto store = loadedFrom(newer, kube, scheduler);
    EXPECT_NE(store->problem().find("NewerVersion"), std::string::npos) << store->problem();
    bool stored = true;
    store->writeAhead([&](bool ok) { stored = ok; });
    EXPECT_FALSE(stored);
    scheduler.advance(Duration(10000));
    EXPECT_EQ(nodePatches(kube), 0) << "neither annotation is overwritten";
  }
}

// The echo of an overlay patch is not news; an overlay someone else wrote or removed is, and the
// whole state is written again over it.
TEST(AnnotationStateStore, SomeoneElsesOverlayIsReplacedByTheWholeStateButItsOwnEchoIsNot) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  ServerNode server(kube);
  auto options = largeStateOptions();
  AnnotationStateStore store(kube, scheduler, options);
  store.onNode(ChangeType::Added, server.node);
  store.update([](NodeState& s) {
    for (int i = 0; i < 20; ++i) s.enis["eni-" + std::to_string(100 + i)] = taggedRecord(i);
  });
  store.writeAhead([](bool) {});
  store.onNode(ChangeType::Modified, server.node);
  store.update([](NodeState& s) { s.enis["eni-105"].pendingHash = "x"; });
  store.writeAhead([](bool) {});
  ASSERT_EQ(nodePatches(kube), 2);
  store.onNode(ChangeType::Modified, server.node);  // its own overlay's echo
  scheduler.advance(Duration(1000));
  EXPECT_EQ(nodePatches(kube), 2) << "its own echo is not news";

  Json::Value foreign = server.node;
  foreign["metadata"]["annotations"][kNodeStatePendingAnnotation] =
      R"({"base":"0000000000000000","enis":{},"version":1})";
  store.onNode(ChangeType::Modified, foreign);
  scheduler.advance(Duration(1000));
  ASSERT_EQ(nodePatches(kube), 3);
  EXPECT_TRUE(server.value(kNodeStatePendingAnnotation).empty());
  EXPECT_EQ(decodeNodeState(server.value(kNodeStateAnnotation)).value(), store.current());
}

// An admission policy from before the overlay refuses it: the store goes back to writing the whole
// state (which that policy allows), and says what to apply.
TEST(AnnotationStateStore, AnOverlayRefusedForPermissionTurnsOverlaysOff) {
  std::vector<std::string> warnings;
  logging::setSink([&](const std::string& line) {
    if (line.find("apply the admission policy") != std::string::npos) warnings.push_back(line);
  });
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  ServerNode server(kube);
  kube.patchAnswer = [&](const ObjectRef&, const Json::Value& body) -> Result<Json::Value> {
    if (body["metadata"]["annotations"][kNodeStatePendingAnnotation].isString())
      return fail(ErrorCode::Permission, "ValidatingAdmissionPolicy: Forbidden");
    server.apply(body);
    return body;
  };
  auto options = largeStateOptions();
  AnnotationStateStore store(kube, scheduler, options);
  store.onNode(ChangeType::Added, server.node);
  store.update([](NodeState& s) {
    for (int i = 0; i < 20; ++i) s.enis["eni-" + std::to_string(100 + i)] = taggedRecord(i);
  });
  bool stored = false;
  store.writeAhead([&](bool ok) { stored = ok; });
  ASSERT_TRUE(stored);
  store.update([](NodeState& s) { s.enis["eni-105"].pendingHash = "x"; });
  store.writeAhead([&](bool ok) { stored = ok; });
  EXPECT_FALSE(stored) << "the overlay was refused";
  scheduler.advance(Duration(2000));  // the backoff's retry
  for (int pass = 0; pass < 2; ++pass) {
    store.update([pass](NodeState& s) { s.enis["eni-10" + std::to_string(pass)].hash = "y"; });
    store.writeAhead([&](bool ok) { stored = ok; });
    EXPECT_TRUE(stored) << "pass " << pass;
  }
  logging::setSink(nullptr);
  EXPECT_TRUE(server.value(kNodeStatePendingAnnotation).empty());
  EXPECT_EQ(decodeNodeState(server.value(kNodeStateAnnotation)).value(), store.current());
  EXPECT_EQ(warnings.size(), 1u);
}

}  // namespace
}  // namespace eni
