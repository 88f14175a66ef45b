// The tagger as keeper of the node-state annotation, with fakes: the ENI manager's attachments
// are recorded, written once after the debounce, and not written again when nothing changed.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "agent/base/executor.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/state/annotation_state_store.h"
#include "agent/tagger/tagger.h"
#include "tests/support/fake_ec2.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeEc2;
using testing::FakeImds;

// eni-1, attached to the instance at device 1 in subnet-1, holding 10.0.0.5 and 10.0.0.6: pods
// share it, so the tests that use it run under --shared-eni-tagging=merge (mergeOptions).
void oneEni(FakeEc2& ec2) {
  auto& eni = ec2.addAttached("eni-1", 1, "subnet-1");
  eni.privateIpAddress = "10.0.0.5";
  eni.privateIpAddresses = {"10.0.0.5", "10.0.0.6"};
}

TaggerOptions mergeOptions() {
  TaggerOptions options;
  options.sharedEnis = SharedEniPolicy::Merge;
  return options;
}

std::map<std::string, std::string> tagsOf(const FakeEc2& ec2, const std::string& id) {
  std::map<std::string, std::string> out;
  for (const auto& t : ec2.enis.at(id).tags) out[t.key] = t.value;
  return out;
}

// A pod just tagged gets its last-applied annotations and its condition in one pods/status
// patch. A pod write the API server refuses (429) is retried after the retry delay, not by the
// next pass 20 ms later, condition included: that fed a storm of thousands of 429s with 110 pods.
// And a write that succeeded is not sent again before the watch shows it.
TEST(TaggerPodWrites, OneWriteCarriesBothAFailedOneBacksOffAndASucceededOneIsNotRepeated) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  oneEni(ec2);
  FakeImds imds(ec2);
  TaggerOptions options = mergeOptions();
  options.nodeName = "n1";
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
  bool refuse = true;
  kube.patchAnswer = [&](const ObjectRef& ref, const Json::Value& body) -> Result<Json::Value> {
    if (ref.kind.plural == "pods" && refuse)
      return fail(ErrorCode::Throttled, "Too many requests, please try again later. (http 429)");
    return body;
  };
  // Every pod write, and those that carried both the last-applied hash and the condition.
  auto podWrites = [&] {
    return std::count_if(kube.patches.begin(), kube.patches.end(),
                         [](const auto& p) { return p.first.kind.plural == "pods"; });
  };
  auto bothInOne = [&] {
    return std::count_if(kube.patches.begin(), kube.patches.end(), [](const auto& p) {
      const auto& [ref, body] = p;
      return ref.kind.plural == "pods" && ref.subresource == "status" &&
             body["metadata"]["annotations"].isMember(kLastAppliedHashAnnotation) &&
             body["status"]["conditions"][0]["reason"].asString() == "Synced";
    });
  };
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  tagger.start();
  Json::Value pod;
  pod["metadata"]["name"] = "web";
  pod["metadata"]["namespace"] = "default";
  pod["metadata"]["uid"] = "u1";
  pod["metadata"]["annotations"]["eni-tagger.io/tags"] = "Team=Platform";
  pod["spec"]["nodeName"] = "n1";
  pod["status"]["phase"] = "Running";
  pod["status"]["podIP"] = "10.0.0.5";
  tagger.onPod(ChangeType::Added, pod);
  for (int i = 0; i < 100; ++i) {
    scheduler.advance(Duration(10));
    tagger.resync();  // passes keep coming, as pod events would start them
  }
  EXPECT_EQ(ec2.calls["CreateTags"], 1);
  EXPECT_EQ(podWrites(), 1) << "one attempt in the first second, not one per pass";
  EXPECT_EQ(bothInOne(), 1) << "the annotations and the condition in one patch";
  refuse = false;
  scheduler.advance(Duration(5000));
  EXPECT_EQ(podWrites(), 2) << "retried after the retry delay";
  EXPECT_EQ(bothInOne(), 2) << "the refused condition with it, though the first pass sent it";
  for (int i = 0; i < 10; ++i) {
    tagger.resync();
    scheduler.advance(Duration(100));
  }
  EXPECT_EQ(podWrites(), 2) << "written once; the watch has not shown it yet";
}

Json::Value annotatedPod(const std::string& name, const std::string& ip) {
  Json::Value pod;
  pod["metadata"]["name"] = name;
  pod["metadata"]["namespace"] = "default";
  pod["metadata"]["uid"] = "uid-" + name;
  pod["metadata"]["annotations"]["eni-tagger.io/tags"] = "Team=Platform";
  pod["spec"]["nodeName"] = "n1";
  pod["status"]["phase"] = "Running";
  pod["status"]["podIP"] = ip;
  return pod;
}

// Annotation seen -> tags on the ENI is measured for every pod: also for one that joins an ENI
// whose tags an earlier pass already wrote (no write of its own), once.
TEST(TaggerLatency, APodJoiningAnAlreadyTaggedEniIsMeasuredOnce) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  oneEni(ec2);
  FakeImds imds(ec2);
  TaggerOptions options = mergeOptions();
  options.nodeName = "n1";
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  tagger.start();
  scheduler.advance(Duration(100));
  EXPECT_EQ(imds.walks, 1) << "the interface map is read at start, before any pod needs it";
  tagger.onPod(ChangeType::Added, annotatedPod("web", "10.0.0.5"));
  scheduler.advance(Duration(100));
  EXPECT_EQ(imds.walks, 1);
  EXPECT_EQ(ec2.calls["CreateTags"], 1);
  EXPECT_EQ(tagger.counters().latencies().size(), 1u);
  tagger.onPod(ChangeType::Added, annotatedPod("api", "10.0.0.6"));
  scheduler.advance(Duration(100));
  EXPECT_EQ(ec2.calls["CreateTags"], 1) << "the ENI carries the tags already";
  EXPECT_EQ(tagger.counters().latencies().size(), 2u);
  tagger.resync();
  scheduler.advance(Duration(100));
  EXPECT_EQ(tagger.counters().latencies().size(), 2u) << "once per annotation";
}

TEST(TaggerResync, AnEarlyResyncReplacesThePendingTimerInsteadOfAddingOne) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  FakeImds imds(ec2);
  TaggerOptions options;
  options.nodeName = "n1";
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  tagger.start();
  scheduler.advance(Duration(2000));  // the first pass and the node-state write
  ASSERT_TRUE(tagger.idle());
  EXPECT_EQ(scheduler.pending(), 1u) << "only the resync timer";
  tagger.resync();
  tagger.resync();
  scheduler.advance(Duration(2000));
  EXPECT_EQ(scheduler.pending(), 1u) << "still one resync timer, not three";
  EXPECT_EQ(tagger.passes(), 2u) << "the two early resyncs shared one pass";
}

// A fleet that restarts at once must not bunch its drift-check reads: the first resync after a
// start spreads over a whole interval (0.5-1.5x), never sooner than half an interval.
TEST(TaggerResync, TheFirstResyncAfterAStartSpreadsOverAWholeInterval) {
  const Duration interval(1800000);
  Duration earliest = interval * 10;
  Duration latest(0);
  for (int n = 0; n < 200; ++n) {
    testing::FakeKubeApi kube;
    testing::ManualScheduler scheduler;
    InlineExecutor executor;
    FakeEc2 ec2;
    FakeImds imds(ec2);
    TaggerOptions options;
    options.nodeName = "n1";
    options.resyncInterval = interval;
    AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
    Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
    Json::Value node;
    node["metadata"]["name"] = "n1";
    store.onNode(ChangeType::Added, node);
    tagger.start();
    scheduler.advance(Duration(2000));  // the first pass and the node-state write
    ASSERT_EQ(scheduler.pending(), 1u) << "only the resync timer";
    const Duration first = scheduler.nextDelay() + Duration(2000);
    earliest = std::min(earliest, first);
    latest = std::max(latest, first);
  }
  EXPECT_GE(earliest, interval / 2);
  EXPECT_LT(earliest, interval * 6 / 10) << "200 starts: some resync in the first tenth";
  EXPECT_GT(latest, interval * 14 / 10) << "200 starts: some resync in the last tenth";
  EXPECT_LE(latest, interval * 3 / 2);
}

// A pod condition patch that fails (the API server restarting, say) used to be forgotten: the
// tagger believed the pod showed the condition and patched it again only when the pod changed.
TEST(TaggerPodWrites, AFailedConditionPatchIsRetriedWithoutThePodChanging) {
  testing::FakeKubeApi kube;
  kube.failStatusPatches = 1;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  FakeImds imds(ec2);
  TaggerOptions options;
  options.nodeName = "n1";
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  tagger.start();
  Json::Value pod;
  pod["metadata"]["name"] = "web";
  pod["metadata"]["namespace"] = "default";
  pod["metadata"]["uid"] = "uid-web";
  pod["metadata"]["annotations"]["eni-tagger.io/tags"] = "{not json";  // InvalidTags, no AWS
  pod["spec"]["nodeName"] = "n1";
  pod["status"]["phase"] = "Running";
  pod["status"]["podIP"] = "10.0.0.5";
  pod["status"]["podIPs"][0]["ip"] = "10.0.0.5";
  tagger.onPod(ChangeType::Added, pod);

  auto conditionPatches = [&] {
    int n = 0;
    for (const auto& [ref, body] : kube.patches) {
      if (ref.subresource == "status" && ref.name == "web") {
        EXPECT_EQ(body["status"]["conditions"][0]["reason"].asString(), "InvalidTags");
        ++n;
      }
    }
    return n;
  };
  scheduler.advance(Duration(100));
  ASSERT_EQ(conditionPatches(), 1) << "the first patch, which fails";
  scheduler.advance(options.retryDelay);
  EXPECT_EQ(conditionPatches(), 2) << "patched again after retryDelay, the pod unchanged";
  scheduler.advance(options.retryDelay * 3);
  EXPECT_EQ(conditionPatches(), 2) << "and not again once it succeeded";
  EXPECT_TRUE(tagger.idle());
  EXPECT_EQ(ec2.writes(), 0);
}

// The SIGKILL drill (seed 7): killed after CreateTags but before the debounced node-state write,
// then the pod deleted while the agent was down, left the agent's tags on the ENI for good. The
// node state must record the tags about to be written before CreateTags is sent, and a restart
// from that record with the pod gone removes them, and only them.
TEST(TaggerWriteAhead, CreateTagsIsSentOnlyOnceTheStateRecordsItAndARestartCleansUp) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  oneEni(ec2);
  ec2.enis["eni-1"].tags = {{"Owner", "someone-else"}};  // a foreign tag, never the agent's
  std::vector<std::string> stateAtCreateTags;            // the node state the API server held then
  ec2.onCreateTags = [&](const std::vector<std::string>&, const std::vector<Tag>&) {
    std::string stored;
    for (const auto& [ref, body] : kube.patches) {
      if (ref.kind.plural == "nodes")
        stored = body["metadata"]["annotations"][kNodeStateAnnotation].asString();
    }
    stateAtCreateTags.push_back(stored);
  };
  FakeImds imds(ec2);
  TaggerOptions options = mergeOptions();
  options.nodeName = "n1";
  std::string writeAhead;
  {
    AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
    Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
    Json::Value node;
    node["metadata"]["name"] = "n1";
    store.onNode(ChangeType::Added, node);
    tagger.start();
    tagger.onPod(ChangeType::Added, annotatedPod("web", "10.0.0.5"));
    scheduler.advance(Duration(100));  // the pass ran; the debounced state write has not
    ASSERT_EQ(stateAtCreateTags.size(), 1u);
    writeAhead = stateAtCreateTags[0];
    auto state = decodeNodeState(writeAhead);
    ASSERT_TRUE(state) << "no node state was stored before CreateTags: " << writeAhead;
    ASSERT_EQ(state->enis.count("eni-1"), 1u);
    EXPECT_EQ(state->enis["eni-1"].pendingKeys, std::vector<std::string>{"Team"});
    EXPECT_EQ(state->enis["eni-1"].pendingHash, tagHash({{"Team", "Platform"}}));
    EXPECT_EQ(tagsOf(ec2, "eni-1")["Team"], "Platform");
    // The killed agent's debounced write never happens: the tagger goes away here.
  }
  const auto describesBefore = ec2.calls["DescribeNetworkInterfaces"];
  testing::FakeKubeApi kube2;  // the restarted agent, the pod deleted meanwhile
  AnnotationStateStore store(kube2, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube2, ec2, imds, scheduler, executor, scheduler, store, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  node["metadata"]["annotations"][kNodeStateAnnotation] = writeAhead;
  store.onNode(ChangeType::Added, node);
  tagger.start();
  scheduler.advance(Duration(1000));
  EXPECT_EQ(ec2.calls["DescribeNetworkInterfaces"], describesBefore + 1)
      << "one Describe tells what the write did";
  EXPECT_EQ(tagsOf(ec2, "eni-1"), (std::map<std::string, std::string>{{"Owner", "someone-else"}}))
      << "the agent's tags are gone, the foreign one stays";
  for (const auto& t : ec2.deleteRequests) EXPECT_NE(t.key, "Owner");
  EXPECT_TRUE(tagger.state().enis.empty());
  EXPECT_TRUE(tagger.idle());
}

// The calls of one tagger, in order: "patch" for each node-state patch the API server took (with
// the pending records it held), the EC2 actions by name; and, at each CreateTags, whether the
// last stored node state recorded exactly that write ahead of it.
struct WriteAheadRig {
  WriteAheadRig() {
    oneEni(ec2);
    kube.patchAnswer = [this](const ObjectRef& ref,
                              const Json::Value& body) -> Result<Json::Value> {
      if (ref.kind.plural == "nodes") {
        calls.push_back("patch");
        if (refuseNodePatches > 0) {
          --refuseNodePatches;
          return fail(ErrorCode::Transient, "etcdserver: request timed out (http 500)");
        }
        stored = body["metadata"]["annotations"][kNodeStateAnnotation].asString();
      }
      return body;
    };
    ec2.onCall = [this](const std::string& action) { calls.push_back(action); };
    ec2.onCreateTags = [this](const std::vector<std::string>& ids, const std::vector<Tag>& tags) {
      auto state = decodeNodeState(stored);
      bool recorded = state.has_value();
      for (const auto& id : ids) {
        if (!recorded || state->enis.count(id) == 0) {
          recorded = false;
          break;
        }
        const EniRecord& r = state->enis.at(id);
        std::vector<std::string> keys;
        std::string hash;
        for (const auto& t : tags) {
          if (t.key == kHashTagKey)
            hash = t.value;
          else
            keys.push_back(t.key);
        }
        recorded = recorded && r.pendingHash == hash && r.pendingKeys == keys;
      }
      recordedAtCreateTags.push_back(recorded);
    };
    options.nodeName = "n1";
    Json::Value node;
    node["metadata"]["name"] = "n1";
    store.onNode(ChangeType::Added, node);
    tagger.start();
    tagger.onPod(ChangeType::Added, annotatedPod("web", "10.0.0.5"));
    scheduler.advance(Duration(1000));  // the first pass, and its state written after the debounce
  }
  void annotate(const std::string& tags) {
    Json::Value pod = annotatedPod("web", "10.0.0.5");
    pod["metadata"]["annotations"]["eni-tagger.io/tags"] = tags;
    calls.clear();
    tagger.onPod(ChangeType::Modified, pod);
    scheduler.advance(Duration(100));  // the pass; not the debounced write after it
  }
  // Passes in flight: a second ENI (its IP returned) and node patches left unanswered until
  // kube.releaseHeld().
  std::string secondEniHeldPatches() {
    kube.holdPatch = [](const ObjectRef& ref) { return ref.kind.plural == "nodes"; };
    return ec2.addAttached("eni-2", 2, "subnet-1").privateIpAddress;
  }
  long podPatches(const std::string& name) const {
    return std::count_if(kube.patches.begin(), kube.patches.end(),
                         [&](const auto& p) { return p.first.name == name; });
  }
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  FakeImds imds{ec2};
  TaggerOptions options = mergeOptions();
  AnnotationStateStore store{kube, scheduler, {"n1", Duration(500)}};
  Tagger tagger{kube, ec2, imds, scheduler, executor, scheduler, store, options};
  std::vector<std::string> calls;
  std::string stored;
  std::vector<bool> recordedAtCreateTags;
  int refuseNodePatches = 0;
};

// Passes pipeline: while one pass's write-ahead is on its way, the next plans beside it, and its
// own record goes out in the patch after; a pod on the ENI the first one writes waits for it. No
// CreateTags goes out before a patch that records it has landed.
TEST(TaggerWriteAhead, TheNextPassPlansWhileAWriteAheadIsOnItsWay) {
  WriteAheadRig rig;
  const std::string other = rig.secondEniHeldPatches();
  const auto passes = rig.tagger.passes();
  rig.annotate("Team=Infra");  // web, on eni-1: its record goes out and stays unanswered
  ASSERT_EQ(rig.kube.held.size(), 1u);
  rig.tagger.onPod(ChangeType::Added, annotatedPod("api", other));  // eni-2
  Json::Value db = annotatedPod("db", "10.0.0.6");                  // eni-1, being written
  db["metadata"]["annotations"]["eni-tagger.io/tags"] = "Team=Infra";
  rig.tagger.onPod(ChangeType::Added, db);
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(rig.tagger.passes(), passes + 2) << "api's pass planned beside web's";
  EXPECT_EQ(rig.kube.held.size(), 1u) << "one node patch at a time";
  EXPECT_EQ(rig.ec2.calls["CreateTags"], 1) << "nothing written before its record landed";
  EXPECT_EQ(rig.podPatches("db"), 0) << "db waits for the pass that writes its ENI";
  EXPECT_EQ(rig.podPatches("api"), 0);
  EXPECT_FALSE(rig.tagger.idle());
  for (int i = 0; i < 20 && rig.kube.releaseHeld(); ++i) rig.scheduler.advance(Duration(100));
  rig.kube.holdPatch = nullptr;
  while (rig.kube.releaseHeld()) rig.scheduler.advance(Duration(100));
  rig.scheduler.advance(Duration(2000));
  EXPECT_EQ(rig.recordedAtCreateTags, (std::vector<bool>{true, true, true}));
  EXPECT_EQ(tagsOf(rig.ec2, "eni-1")["Team"], "Infra");
  EXPECT_EQ(tagsOf(rig.ec2, "eni-2")["Team"], "Platform");
  const auto& enis = rig.tagger.state().enis;
  ASSERT_EQ(enis.count("eni-1"), 1u);
  ASSERT_EQ(enis.count("eni-2"), 1u);
  EXPECT_EQ(enis.at("eni-1").pods.count("default/db"), 1u) << "judged once eni-1's pass ended";
  EXPECT_EQ(enis.at("eni-1").pods.count("default/web"), 1u);
  EXPECT_EQ(enis.at("eni-2").pods.count("default/api"), 1u);
  EXPECT_FALSE(enis.at("eni-1").hasPending());
  EXPECT_FALSE(enis.at("eni-2").hasPending());
  auto stored = decodeNodeState(rig.stored);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->enis, enis) << "and the API server's copy follows";
  EXPECT_GT(rig.podPatches("db"), 0);
  EXPECT_TRUE(rig.tagger.idle());
}

// A pass that writes one ENI does not hold back the pods of another it need not write: a pod
// joining an ENI that already carries its tags is Synced before the write-ahead lands.
TEST(TaggerWriteAhead, APodWhoseEniNeedsNoWriteDoesNotWaitForTheWriteAhead) {
  WriteAheadRig rig;
  const std::string other = rig.secondEniHeldPatches();
  const auto passes = rig.tagger.passes();
  const auto synced = rig.tagger.counters().syncResult(SyncReason::Synced);
  rig.tagger.onPod(ChangeType::Added, annotatedPod("api", other));      // eni-2: a write
  rig.tagger.onPod(ChangeType::Added, annotatedPod("db", "10.0.0.6"));  // eni-1: tagged already
  rig.scheduler.advance(Duration(100));
  ASSERT_EQ(rig.tagger.passes(), passes + 1) << "one pass for both";
  ASSERT_EQ(rig.kube.held.size(), 1u) << "api's record, on its way";
  EXPECT_EQ(rig.podPatches("db"), 1) << "db's last-applied tags and condition, at once";
  EXPECT_EQ(rig.podPatches("api"), 0) << "api waits for its record and CreateTags";
  rig.kube.holdPatch = nullptr;
  while (rig.kube.releaseHeld()) rig.scheduler.advance(Duration(100));
  rig.scheduler.advance(Duration(1000));
  EXPECT_EQ(rig.podPatches("db"), 1) << "not written again at the pass's end";
  EXPECT_EQ(rig.podPatches("api"), 1);
  EXPECT_EQ(rig.recordedAtCreateTags, (std::vector<bool>{true, true}));
  EXPECT_EQ(rig.tagger.state().enis.at("eni-1").pods.count("default/db"), 1u);
  EXPECT_EQ(rig.tagger.counters().syncResult(SyncReason::Synced), synced + 3)
      << "web (db's neighbour), db and api: once each";
  EXPECT_TRUE(rig.tagger.idle());
}

// The same two passes in flight together, and the API server refuses their records: neither
// writes a tag, each puts back only its own records, and the retry (a pass of every pod, alone)
// tags both ENIs under a record that landed.
TEST(TaggerWriteAhead, PassesInFlightTogetherThatCannotRecordWriteNothingAndRetry) {
  WriteAheadRig rig;
  const auto before = rig.tagger.state().enis;
  const std::string other = rig.secondEniHeldPatches();
  rig.annotate("Team=Infra");
  rig.tagger.onPod(ChangeType::Added, annotatedPod("api", other));
  rig.scheduler.advance(Duration(100));
  ASSERT_EQ(rig.kube.held.size(), 1u);
  rig.refuseNodePatches = 3;  // web's early record, then both passes' records, then web's final
  for (int i = 0; i < 40 && rig.refuseNodePatches > 0; ++i) {
    rig.kube.releaseHeld();
    rig.scheduler.advance(Duration(100));
    EXPECT_EQ(rig.ec2.calls["CreateTags"], 1) << "nothing written while no record lands";
  }
  ASSERT_EQ(rig.refuseNodePatches, 0);
  EXPECT_EQ(rig.tagger.state().enis, before) << "each pass put back its own records";
  rig.kube.holdPatch = nullptr;
  while (rig.kube.releaseHeld()) rig.scheduler.advance(Duration(100));
  rig.scheduler.advance(Duration(10000));  // the retry
  EXPECT_EQ(tagsOf(rig.ec2, "eni-1")["Team"], "Infra");
  EXPECT_EQ(tagsOf(rig.ec2, "eni-2")["Team"], "Platform");
  for (bool recorded : rig.recordedAtCreateTags) EXPECT_TRUE(recorded);
  EXPECT_EQ(rig.tagger.state().enis.at("eni-2").pods.count("default/api"), 1u);
  EXPECT_TRUE(rig.tagger.idle());
}

// An ENI the agent keeps a record of (or IMDS names): the pass records its write-ahead while it
// reads the ENI, not after, and that one patch covers the CreateTags.
TEST(TaggerWriteAhead, ForAKnownEniTheRecordGoesOutWhileTheEniIsRead) {
  WriteAheadRig rig;
  ASSERT_EQ(rig.recordedAtCreateTags, std::vector<bool>{true});
  rig.annotate("Team=Infra");
  EXPECT_EQ(rig.calls,
            (std::vector<std::string>{"patch", "DescribeNetworkInterfaces", "CreateTags"}));
  EXPECT_EQ(rig.recordedAtCreateTags, (std::vector<bool>{true, true}));
  EXPECT_EQ(tagsOf(rig.ec2, "eni-1")["Team"], "Infra");
}

// What the read shows changes the plan: the early record does not cover it, so either nothing is
// written (a foreign hash: Conflict) or a second write-ahead records what is, before CreateTags.
TEST(TaggerWriteAhead, AnEarlyRecordThatTheReadProvesWrongCoversNothing) {
  {
    WriteAheadRig rig;
    for (auto& t : rig.ec2.enis["eni-1"].tags) {
      if (t.key == kHashTagKey) t.value = "another-tools-hash";
    }
    rig.annotate("Team=Infra");
    EXPECT_EQ(rig.calls, (std::vector<std::string>{"patch", "DescribeNetworkInterfaces"}));
    EXPECT_EQ(rig.ec2.calls["CreateTags"], 1) << "the first pass's only";
    rig.scheduler.advance(Duration(1000));
    EXPECT_FALSE(rig.tagger.state().enis.at("eni-1").hasPending()) << "the record is dropped";
    auto stored = decodeNodeState(rig.stored);
    ASSERT_TRUE(stored);
    EXPECT_FALSE(stored->enis.at("eni-1").hasPending()) << "and the API server's copy follows";
  }
  {
    WriteAheadRig rig;
    rig.ec2.enis["eni-1"].tags.push_back({"Env", "staging"});  // someone else's key
    rig.annotate("Team=Infra,Env=prod");
    ASSERT_EQ(rig.ec2.calls["CreateTags"], 2) << "Team is still written";
    EXPECT_EQ(rig.calls, (std::vector<std::string>{"patch", "DescribeNetworkInterfaces", "patch",
                                                   "CreateTags"}));
    EXPECT_EQ(rig.recordedAtCreateTags, (std::vector<bool>{true, true}));
    EXPECT_EQ(tagsOf(rig.ec2, "eni-1")["Env"], "staging") << "never overwritten";
  }
}

// The early record cannot be stored: no tag goes out under it, and the pass records the final
// plan as if there had been no early one (which the store sends after its backoff).
TEST(TaggerWriteAhead, AnEarlyRecordNotStoredIsFollowedByTheFinalOne) {
  WriteAheadRig rig;
  rig.refuseNodePatches = 1;
  rig.annotate("Team=Infra");
  rig.scheduler.advance(Duration(2000));
  EXPECT_EQ(rig.refuseNodePatches, 0);
  ASSERT_GE(rig.calls.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(rig.calls.begin(), rig.calls.begin() + 4),
            (std::vector<std::string>{"patch", "DescribeNetworkInterfaces", "patch", "CreateTags"}))
      << "refused, read, recorded, written";
  EXPECT_EQ(rig.recordedAtCreateTags, (std::vector<bool>{true, true}));
  EXPECT_EQ(tagsOf(rig.ec2, "eni-1")["Team"], "Infra");
}

// Neither record can be stored: no tag goes out, and the tagger's records are what they were
// before the pass, not the pending ones (which the next patch would carry as owned).
TEST(TaggerWriteAhead, AWriteAheadNotStoredLeavesTheRecordsAsTheyWere) {
  WriteAheadRig rig;
  const auto before = rig.tagger.state().enis;
  ASSERT_FALSE(before.empty());
  rig.refuseNodePatches = 2;
  rig.annotate("Team=Infra");
  for (int i = 0; i < 40 && rig.refuseNodePatches > 0; ++i) rig.scheduler.advance(Duration(100));
  ASSERT_EQ(rig.refuseNodePatches, 0);
  EXPECT_EQ(rig.ec2.calls["CreateTags"], 1) << "the first pass's only";
  EXPECT_EQ(rig.tagger.state().enis, before);
}

// At debug, each pass says where its time went: how long its oldest annotation waited, then
// planning, the write-ahead and the writes (the scheduler's clock here: the 20 ms window).
TEST(TaggerWriteAhead, APassLogsWhereItsTimeWentAtDebug) {
  WriteAheadRig rig;
  std::vector<std::string> lines;
  logging::setSink([&](const std::string& l) {
    if (l.find("\"tag pass\"") != std::string::npos) lines.push_back(l);
  });
  logging::configure(LogFormat::Json, LogLevel::Debug);
  rig.annotate("Team=Infra");
  logging::configure(LogFormat::Json, LogLevel::Info);
  logging::setSink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  auto line = parseJson(lines[0]);
  ASSERT_TRUE(line) << lines[0];
  EXPECT_EQ(stringField(*line, "pods"), "1");
  EXPECT_EQ(stringField(*line, "writes"), "1");
  EXPECT_EQ(std::stod(stringField(*line, "waited_ms")), 20.0) << lines[0];
  for (const char* phase : {"plan_ms", "record_ms", "write_ms", "total_ms"})
    EXPECT_EQ(std::stod(stringField(*line, phase)), 0.0) << phase;
}

// Only ENIs the node's own sources name are recorded early: one that only a pod's pod-eni
// annotation names (here another instance's) is read and refused before the node state mentions
// it, even as pending.
TEST(TaggerWriteAhead, AnEniOnlyAPodsAnnotationNamesIsNeverRecordedEarly) {
  WriteAheadRig rig;
  auto& foreign = rig.ec2.addAttached("eni-9", 1, "subnet-1");
  foreign.attachment->instanceId = "i-another";
  foreign.tags = {{"Owner", "another-team"}};
  Json::Value pod = annotatedPod("evil", foreign.privateIpAddress);
  pod["metadata"]["annotations"][kPodEniAnnotation] =
      R"([{"eniId":"eni-9","privateIp":")" + foreign.privateIpAddress + R"(","vlanId":1}])";
  rig.calls.clear();
  rig.tagger.onPod(ChangeType::Added, pod);
  rig.scheduler.advance(Duration(1000));
  EXPECT_EQ(rig.calls.front(), "DescribeNetworkInterfaces") << "read first";
  EXPECT_EQ(rig.ec2.calls["CreateTags"], 1) << "the first pass's only";
  for (const auto& [ref, body] : rig.kube.patches) {
    if (ref.kind.plural != "nodes") continue;
    EXPECT_EQ(body["metadata"]["annotations"][kNodeStateAnnotation].asString().find("eni-9"),
              std::string::npos);
  }
  EXPECT_EQ(rig.ec2.enis["eni-9"].tags, (std::vector<Tag>{{"Owner", "another-team"}}));
}

int nodePatches(const testing::FakeKubeApi& kube) {
  int n = 0;
  for (const auto& [ref, body] : kube.patches) n += ref.kind.plural == "nodes";
  return n;
}

// A newer agent's state ("version": 2) was overwritten by an older agent after a rollback. The
// older agent leaves it alone, runs cold, writes no tag it could not record, and says so.
TEST(TaggerNodeState, ANewerAgentsStateIsNeitherReadNorOverwritten) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  oneEni(ec2);
  FakeImds imds(ec2);
  TaggerOptions options = mergeOptions();
  options.nodeName = "n1";
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  node["metadata"]["annotations"][kNodeStateAnnotation] = R"({"version":2,"enis":{}})";
  store.onNode(ChangeType::Added, node);
  EXPECT_NE(store.problem().find("NewerVersion"), std::string::npos);
  tagger.start();
  tagger.onPod(ChangeType::Added, annotatedPod("web", "10.0.0.5"));
  store.update([&](NodeState& s) {
    s.attachments = {{"multus", "eni-2", "eni-attach-2", 2, "", 9001, AttachmentPhase::Attached}};
  });
  scheduler.advance(Duration(30000));
  EXPECT_EQ(nodePatches(kube), 0) << "the newer record stays as it is";
  EXPECT_EQ(ec2.calls["CreateTags"], 0) << "no tag it could not record";
  EXPECT_EQ(ec2.calls["DescribeNetworkInterfaces"], 1) << "a cold start, once: no retry loop";
  int taggingFailed = 0;
  for (const auto& [ref, body] : kube.patches) {
    if (ref.subresource == "status" &&
        body["status"]["conditions"][0]["reason"].asString() == "TaggingFailed" &&
        body["status"]["conditions"][0]["message"].asString().find("newer") != std::string::npos)
      ++taggingFailed;
  }
  EXPECT_EQ(taggingFailed, 1) << "the pod says why";
}

// k8s-eni-tagger's ConfigMap is asked for once, before the first pass, and never written; one that
// cannot be read (forbidden: RBAC not applied in that namespace) holds nothing up.
TEST(TaggerEniTaggerCache, ReadOnceNeverWrittenAndAnUnreadableOneHoldsNothingUp) {
  testing::FakeKubeApi kube;
  kube.failNext.push_back(Error(ErrorCode::Permission, "configmaps is forbidden"));
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  const std::string ip = ec2.addAttached("eni-2", 2, "subnet-1").privateIpAddress;
  FakeImds imds(ec2);
  TaggerOptions options;
  options.nodeName = "n1";
  options.eniTaggerCacheNamespace = "kube-system";
  AnnotationStateStore store(kube, scheduler, {"n1", Duration(500)});
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, store, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  store.onNode(ChangeType::Added, node);
  tagger.start();
  tagger.start();
  tagger.onPod(ChangeType::Added, annotatedPod("web", ip));
  for (int i = 0; i < 5; ++i) {
    tagger.resync();
    scheduler.advance(Duration(100));
  }
  EXPECT_EQ(ec2.calls["CreateTags"], 1);
  EXPECT_EQ(kube.gets, 1) << "one get, at the first start";
  for (const auto& [ref, body] : kube.patches) EXPECT_NE(ref.kind.plural, "configmaps");
  for (const auto& [ref, body] : kube.updateBodies) EXPECT_NE(ref.kind.plural, "configmaps");
}

// While the EC2 client's bucket cannot serve a pass's read and CreateTags, the pass waits before it
// starts, and a pod annotated meanwhile is tagged by that same pass: one read and one CreateTags
// for both, not a pass that sleeps in its calls and another one after it.
TEST(TaggerPasses, APassWaitsForTheEc2BucketAndTakesInThePodsMarkedMeanwhile) {
  WriteAheadRig rig;
  const auto passes = rig.tagger.passes();
  const int reads = rig.ec2.reads();
  const int creates = rig.ec2.calls["CreateTags"];
  rig.ec2.hold = Duration(300);
  Json::Value a = annotatedPod("a", "10.0.0.6");
  a["metadata"]["annotations"]["eni-tagger.io/tags"] = "Team=Platform,App=a";
  rig.tagger.onPod(ChangeType::Added, a);
  rig.scheduler.advance(Duration(100));
  Json::Value web = annotatedPod("web", "10.0.0.5");
  web["metadata"]["annotations"]["eni-tagger.io/tags"] = "Team=Platform,Tier=web";
  rig.tagger.onPod(ChangeType::Modified, web);
  rig.scheduler.advance(Duration(150));
  EXPECT_EQ(rig.tagger.passes(), passes) << "held off while the bucket is short";
  EXPECT_EQ(rig.ec2.reads(), reads);
  rig.ec2.hold = Duration(0);
  rig.scheduler.advance(Duration(1000));
  EXPECT_EQ(rig.tagger.passes(), passes + 1);
  EXPECT_EQ(rig.ec2.reads(), reads + 1);
  EXPECT_EQ(rig.ec2.calls["CreateTags"], creates + 1);
  const auto tags = tagsOf(rig.ec2, "eni-1");
  EXPECT_EQ(tags.count("App"), 1u);
  EXPECT_EQ(tags.count("Tier"), 1u);
}

// `n` ENIs of one address each (eni-i holds ips[i]; no pods share them, so the default
// --shared-eni-tagging=refuse tags them), a store on node n1 and a started tagger.
struct OwnEnisRig {
  explicit OwnEnisRig(int n) {
    for (int i = 0; i < n; ++i) {
      ips.push_back(ec2.addAttached("eni-" + std::to_string(i), i + 1).privateIpAddress);
    }
    options.nodeName = "n1";
    tagger =
        std::make_unique<Tagger>(kube, ec2, imds, scheduler, executor, scheduler, store, options);
    Json::Value node;
    node["metadata"]["name"] = "n1";
    store.onNode(ChangeType::Added, node);
    tagger->start();
  }
  Json::Value pod(int i, const std::string& tags) const {
    Json::Value p = annotatedPod("p" + std::to_string(i), ips[static_cast<std::size_t>(i)]);
    p["metadata"]["annotations"]["eni-tagger.io/tags"] = tags;
    return p;
  }
  std::string team(int i) const {
    const auto tags = tagsOf(ec2, "eni-" + std::to_string(i));
    auto it = tags.find("Team");
    return it == tags.end() ? std::string("(none)") : it->second;
  }
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  FakeEc2 ec2;
  FakeImds imds{ec2};
  std::vector<std::string> ips;
  TaggerOptions options;
  AnnotationStateStore store{kube, scheduler, {"n1", Duration(500)}};
  std::unique_ptr<Tagger> tagger;
};

// Each pass judges the pods marked since the last one and those sharing an ENI with them: a pod
// created after five others is judged alone, not with the five again, so a pass's work does not
// grow with the pods on the node. A pod whose tagging failed is judged again by the next pass,
// whatever marked it, and a resync judges every pod.
TEST(TaggerPasses, APassJudgesThePodsMarkedSinceTheLastAndTheirNeighboursOnly) {
  OwnEnisRig rig(6);
  Tagger& tagger = *rig.tagger;
  rig.scheduler.advance(Duration(100));
  auto judged = [&] {
    std::uint64_t n = 0;
    for (const auto& [result, count] : tagger.counters().syncResults()) n += count;
    return n;
  };
  for (int i = 0; i < 6; ++i) {
    tagger.onPod(ChangeType::Added, rig.pod(i, "Team=Platform"));
    rig.scheduler.advance(Duration(100));
  }
  EXPECT_EQ(judged(), 6u) << "one verdict per pod, not 1+2+...+6";
  for (int i = 0; i < 6; ++i) EXPECT_EQ(rig.team(i), "Platform") << i;

  tagger.onPod(ChangeType::Modified, rig.pod(2, "Team=Web"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(judged(), 7u);
  EXPECT_EQ(rig.team(2), "Web");

  tagger.onPod(ChangeType::Deleted, rig.pod(3, "Team=Platform"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(rig.team(3), "(none)") << "a pod gone: its ENI's owned tags go";
  EXPECT_EQ(judged(), 7u) << "nobody else was judged for it";
  for (int i : {0, 1, 4, 5}) EXPECT_EQ(rig.team(i), "Platform") << i;

  // EC2 refuses p4's CreateTags (not retried on its own); p5's change brings p4 along.
  rig.ec2.failNext["CreateTags"] = Error{ErrorCode::Invalid, "refused once"};
  tagger.onPod(ChangeType::Modified, rig.pod(4, "Team=Db"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(tagger.counters().syncResult(SyncReason::TaggingFailed), 1u);
  EXPECT_EQ(rig.team(4), "Platform");
  tagger.onPod(ChangeType::Modified, rig.pod(5, "Team=Api"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(rig.team(4), "Db") << "the failed pod was judged again by the next pass";
  EXPECT_EQ(rig.team(5), "Api");
  EXPECT_EQ(judged(), 10u);

  tagger.resync();
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(judged(), 15u) << "a resync judges all five pods";
  for (int i : {0, 1}) EXPECT_EQ(rig.team(i), "Platform") << i;
  EXPECT_EQ(rig.team(2), "Web");
}

// A pass that reads the ENIs it writes reads the instance's other ENIs with them (IMDS lists
// them), and for a second that read counts for the next passes of a burst: a pod on another of
// them costs one CreateTags, not a read and a CreateTags. An ENI written since, or a read older
// than a second, is read again before the next write.
TEST(TaggerPasses, APassWritesWhatTheLastSecondsReadShowedWithoutAReadOfItsOwn) {
  OwnEnisRig rig(3);
  Tagger& tagger = *rig.tagger;
  FakeEc2& ec2 = rig.ec2;
  rig.scheduler.advance(Duration(2000));  // the cold start's read is stale by now
  const int reads = ec2.reads();
  tagger.onPod(ChangeType::Added, rig.pod(0, "Team=A"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(ec2.reads(), reads + 1);
  EXPECT_EQ(ec2.calls["CreateTags"], 1);
  tagger.onPod(ChangeType::Added, rig.pod(1, "Team=B"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(ec2.reads(), reads + 1) << "eni-1 came with the first pass's read";
  EXPECT_EQ(ec2.calls["CreateTags"], 2);
  EXPECT_EQ(rig.team(1), "B");
  tagger.onPod(ChangeType::Modified, rig.pod(0, "Team=C"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(ec2.reads(), reads + 2) << "eni-0 was written since it was read";
  EXPECT_EQ(rig.team(0), "C");
  rig.scheduler.advance(Duration(1000));
  tagger.onPod(ChangeType::Added, rig.pod(2, "Team=D"));
  rig.scheduler.advance(Duration(100));
  EXPECT_EQ(ec2.reads(), reads + 3) << "the read of eni-2 is over a second old";
  EXPECT_EQ(rig.team(2), "D");
  EXPECT_EQ(ec2.calls["CreateTags"], 4);
}

}  // namespace
}  // namespace eni
