// AnnotationStateStore: the node state's keeper in Kubernetes mode, against FakeKubeApi and a
// manual scheduler. Loading, debounced writes only when changed, write-aheads answered once a
// patch carries them, backoff after refusals, rewrites when the annotation is removed.
#include "agent/state/annotation_state_store.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace eni
