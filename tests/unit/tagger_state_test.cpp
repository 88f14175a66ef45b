// The tagger as keeper of the node-state annotation, with fakes: the ENI manager's attachments
// are recorded, written once after the debounce, and not written again when nothing changed.
#include <gtest/gtest.h>

#include <algorithm>

#include "agent/base/executor.h"
#include "agent/base/json.h"
#include "agent/tagger/tagger.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

class NoEc2 final : public Ec2Api {
 public:
  Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>&, const std::vector<Filter>&) override {
    ++calls;
    return fail(ErrorCode::Internal, "unexpected");
  }
  Result<void> createTags(const std::vector<std::string>&, const std::vector<Tag>&) override {
    return no();
  }
  Result<void> deleteTags(const std::vector<std::string>&, const std::vector<Tag>&) override {
    return no();
  }
  Result<NetworkInterface> createNetworkInterface(const CreateEniRequest&) override { return no(); }
  Result<std::string> attachNetworkInterface(const std::string&, const std::string&,
                                             std::int64_t) override {
    return no();
  }
  Result<void> detachNetworkInterface(const std::string&, bool) override { return no(); }
  Result<void> deleteNetworkInterface(const std::string&) override { return no(); }
  Result<void> setDeleteOnTermination(const std::string&, const std::string&, bool) override {
    return no();
  }
  Result<std::vector<Subnet>> describeSubnets(const std::vector<std::string>&,
                                              const std::vector<Filter>&) override {
    return no();
  }
  Result<std::vector<SecurityGroup>> describeSecurityGroups(const std::vector<std::string>&,
                                                            const std::vector<Filter>&) override {
    return no();
  }
  Result<Instance> describeInstance(const std::string&) override { return no(); }
  int calls = 0;

 private:
  tl::unexpected<Error> no() {
    ++calls;
    return fail(ErrorCode::Internal, "unexpected");
  }
};

class NoImds final : public Imds {
 public:
  Result<std::string> get(const std::string&) override {
    return fail(ErrorCode::Internal, "unexpected");
  }
  Result<InstanceIdentity> identity() override { return fail(ErrorCode::Internal, "unexpected"); }
  Result<InterfaceMap> interfaces() override { return fail(ErrorCode::Internal, "unexpected"); }
  Result<Credentials> roleCredentials() override { return fail(ErrorCode::Internal, "unexpected"); }
};

// EC2 and IMDS for one ENI holding 10.0.0.5 and 10.0.0.6: CreateTags succeeds, and Describe shows
// no tags.
class OneEniEc2 final : public Ec2Api {
 public:
  Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>&, const std::vector<Filter>&) override {
    return std::vector<NetworkInterface>{};
  }
  Result<void> createTags(const std::vector<std::string>&, const std::vector<Tag>&) override {
    ++createTagsCalls;
    return {};
  }
  Result<void> deleteTags(const std::vector<std::string>&, const std::vector<Tag>&) override {
    return {};
  }
  Result<NetworkInterface> createNetworkInterface(const CreateEniRequest&) override { return no(); }
  Result<std::string> attachNetworkInterface(const std::string&, const std::string&,
                                             std::int64_t) override {
    return no();
  }
  Result<void> detachNetworkInterface(const std::string&, bool) override { return no(); }
  Result<void> deleteNetworkInterface(const std::string&) override { return no(); }
  Result<void> setDeleteOnTermination(const std::string&, const std::string&, bool) override {
    return no();
  }
  Result<std::vector<Subnet>> describeSubnets(const std::vector<std::string>&,
                                              const std::vector<Filter>&) override {
    return no();
  }
  Result<std::vector<SecurityGroup>> describeSecurityGroups(const std::vector<std::string>&,
                                                            const std::vector<Filter>&) override {
    return no();
  }
  Result<Instance> describeInstance(const std::string&) override { return no(); }
  int createTagsCalls = 0;

 private:
  static tl::unexpected<Error> no() { return fail(ErrorCode::Internal, "unexpected"); }
};

class OneEniImds final : public Imds {
 public:
  Result<std::string> get(const std::string&) override {
    return fail(ErrorCode::NotFound, "not here");
  }
  Result<InstanceIdentity> identity() override {
    return InstanceIdentity{"i-1", "us-east-1", "us-east-1a", "02:00:00:00:00:01"};
  }
  Result<InterfaceMap> interfaces() override {
    ++walks;
    ImdsInterface i;
    i.mac = "02:00:00:00:00:01";
    i.interfaceId = "eni-1";
    i.deviceNumber = 0;
    i.localIpv4s = {"10.0.0.5", "10.0.0.6"};
    i.subnetId = "subnet-1";
    i.vpcId = "vpc-1";
    InterfaceMap map;
    map.interfaces = {i};
    return map;
  }
  Result<Credentials> roleCredentials() override { return fail(ErrorCode::Internal, "unexpected"); }
  int walks = 0;
};

// A pod write the API server refuses (429) is retried after the retry delay, not by the next pass
// 20 ms later (and a refused condition is retried at all): that fed a storm of thousands of 429s
// with 110 pods. And a write that succeeded is not sent again before the watch shows it.
TEST(TaggerPodWrites, AFailedLastAppliedWriteBacksOffAndASucceededOneIsNotRepeated) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  OneEniEc2 ec2;
  OneEniImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  bool refuse = true;
  bool refuseStatus = true;
  auto conditionWrites = [&] {
    int n = 0;
    for (const auto& [ref, body] : kube.patches) n += ref.subresource == "status";
    return n;
  };
  auto lastAppliedWrites = [&] {
    int n = 0;
    for (const auto& [ref, body] : kube.patches) {
      n += ref.kind.plural == "pods" && ref.subresource.empty() &&
           body["metadata"]["annotations"].isMember(kLastAppliedHashAnnotation);
    }
    return n;
  };
  kube.patchAnswer = [&](const ObjectRef& ref, const Json::Value& body) -> Result<Json::Value> {
    if (ref.kind.plural == "pods" && (ref.subresource.empty() ? refuse : refuseStatus))
      return fail(ErrorCode::Throttled, "Too many requests, please try again later. (http 429)");
    return body;
  };
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
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
  EXPECT_EQ(ec2.createTagsCalls, 1);
  EXPECT_EQ(lastAppliedWrites(), 1) << "one attempt in the first second, not one per pass";
  EXPECT_EQ(conditionWrites(), 0) << "the pod backs off as a whole";
  refuse = false;
  scheduler.advance(Duration(5000));
  EXPECT_EQ(lastAppliedWrites(), 2) << "retried after the retry delay";
  EXPECT_EQ(conditionWrites(), 1);
  refuseStatus = false;
  scheduler.advance(Duration(5000));
  EXPECT_EQ(conditionWrites(), 2) << "a refused condition is sent again, though the pass sent it";
  for (int i = 0; i < 10; ++i) {
    tagger.resync();
    scheduler.advance(Duration(100));
  }
  EXPECT_EQ(lastAppliedWrites(), 2) << "written once; the watch has not shown it yet";
  EXPECT_EQ(conditionWrites(), 2);
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
  OneEniEc2 ec2;
  OneEniImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
  tagger.start();
  scheduler.advance(Duration(100));
  EXPECT_EQ(imds.walks, 1) << "the interface map is read at start, before any pod needs it";
  tagger.onPod(ChangeType::Added, annotatedPod("web", "10.0.0.5"));
  scheduler.advance(Duration(100));
  EXPECT_EQ(imds.walks, 1);
  EXPECT_EQ(ec2.createTagsCalls, 1);
  EXPECT_EQ(tagger.counters().latencies().size(), 1u);
  tagger.onPod(ChangeType::Added, annotatedPod("api", "10.0.0.6"));
  scheduler.advance(Duration(100));
  EXPECT_EQ(ec2.createTagsCalls, 1) << "the ENI carries the tags already";
  EXPECT_EQ(tagger.counters().latencies().size(), 2u);
  tagger.resync();
  scheduler.advance(Duration(100));
  EXPECT_EQ(tagger.counters().latencies().size(), 2u) << "once per annotation";
}

TEST(TaggerNodeState, RecordsTheEniManagersAttachmentsOnce) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);

  const std::vector<AttachmentRecord> attachments = {
      {"multus", "eni-1", "eni-attach-1", 2, "", 9001, "attached"}};
  tagger.setAttachments(attachments);
  tagger.setAttachments(attachments);  // the same again: nothing new
  EXPECT_TRUE(kube.patches.empty()) << "debounced";
  scheduler.advance(Duration(1000));
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patches[0].first.kind.plural, "nodes");
  EXPECT_EQ(kube.patches[0].first.name, "n1");
  auto state = decodeNodeState(
      kube.patches[0].second["metadata"]["annotations"][kNodeStateAnnotation].asString());
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(state->attachments, attachments);
  tagger.setAttachments(attachments);
  scheduler.advance(Duration(1000));
  EXPECT_EQ(kube.patches.size(), 1u) << "written only when it changed";
  EXPECT_EQ(ec2.calls, 0);
}

TEST(TaggerResync, AnEarlyResyncReplacesThePendingTimerInsteadOfAddingOne) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
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
    NoEc2 ec2;
    NoImds imds;
    TaggerOptions options;
    options.nodeName = "n1";
    options.resyncInterval = interval;
    Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
    Json::Value node;
    node["metadata"]["name"] = "n1";
    tagger.onNode(ChangeType::Added, node);
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
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
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
  EXPECT_EQ(ec2.calls, 0);
}

// EC2 for eni-1 that keeps its tags, applies CreateTags and DeleteTags (a key with a value only
// when it matches) and, at each CreateTags, notes the node state then stored.
class TagKeepingEc2 final : public Ec2Api {
 public:
  explicit TagKeepingEc2(testing::FakeKubeApi& kube) : kube_(kube) {}
  Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>&, const std::vector<Filter>&) override {
    ++describes;
    NetworkInterface eni;
    eni.id = "eni-1";
    eni.subnetId = "subnet-1";
    for (const auto& [k, v] : tags) eni.tags.push_back({k, v});
    return std::vector<NetworkInterface>{eni};
  }
  Result<void> createTags(const std::vector<std::string>&, const std::vector<Tag>& add) override {
    std::string stored;  // the node state as the API server holds it now
    for (const auto& [ref, body] : kube_.patches) {
      if (ref.kind.plural == "nodes")
        stored = body["metadata"]["annotations"][kNodeStateAnnotation].asString();
    }
    stateAtCreateTags.push_back(stored);
    for (const auto& t : add) tags[t.key] = t.value;
    return {};
  }
  Result<void> deleteTags(const std::vector<std::string>&, const std::vector<Tag>& del) override {
    for (const auto& t : del) {
      auto it = tags.find(t.key);
      if (it != tags.end() && (t.value.empty() || t.value == it->second)) tags.erase(it);
      deleted.push_back(t.key);
    }
    return {};
  }
  Result<NetworkInterface> createNetworkInterface(const CreateEniRequest&) override { return no(); }
  Result<std::string> attachNetworkInterface(const std::string&, const std::string&,
                                             std::int64_t) override {
    return no();
  }
  Result<void> detachNetworkInterface(const std::string&, bool) override { return no(); }
  Result<void> deleteNetworkInterface(const std::string&) override { return no(); }
  Result<void> setDeleteOnTermination(const std::string&, const std::string&, bool) override {
    return no();
  }
  Result<std::vector<Subnet>> describeSubnets(const std::vector<std::string>&,
                                              const std::vector<Filter>&) override {
    return no();
  }
  Result<std::vector<SecurityGroup>> describeSecurityGroups(const std::vector<std::string>&,
                                                            const std::vector<Filter>&) override {
    return no();
  }
  Result<Instance> describeInstance(const std::string&) override { return no(); }
  std::map<std::string, std::string> tags;
  std::vector<std::string> stateAtCreateTags;
  std::vector<std::string> deleted;
  int describes = 0;

 private:
  static tl::unexpected<Error> no() { return fail(ErrorCode::Internal, "unexpected"); }
  testing::FakeKubeApi& kube_;
};

// The SIGKILL drill (seed 7): killed after CreateTags but before the debounced node-state write,
// then the pod deleted while the agent was down, left the agent's tags on the ENI for good. The
// node state must record the tags about to be written before CreateTags is sent, and a restart
// from that record with the pod gone removes them, and only them.
TEST(TaggerWriteAhead, CreateTagsIsSentOnlyOnceTheStateRecordsItAndARestartCleansUp) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  TagKeepingEc2 ec2(kube);
  ec2.tags["Owner"] = "someone-else";  // a foreign tag, never the agent's to remove
  OneEniImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  std::string writeAhead;
  {
    Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
    Json::Value node;
    node["metadata"]["name"] = "n1";
    tagger.onNode(ChangeType::Added, node);
    tagger.start();
    tagger.onPod(ChangeType::Added, annotatedPod("web", "10.0.0.5"));
    scheduler.advance(Duration(100));  // the pass ran; the debounced state write has not
    ASSERT_EQ(ec2.stateAtCreateTags.size(), 1u);
    writeAhead = ec2.stateAtCreateTags[0];
    auto state = decodeNodeState(writeAhead);
    ASSERT_TRUE(state) << "no node state was stored before CreateTags: " << writeAhead;
    ASSERT_EQ(state->enis.count("eni-1"), 1u);
    EXPECT_EQ(state->enis["eni-1"].pending.count("Team"), 1u);
    EXPECT_EQ(state->enis["eni-1"].pending.count(kHashTagKey), 1u);
    EXPECT_EQ(ec2.tags["Team"], "Platform");
    // The killed agent's debounced write never happens: the tagger goes away here.
  }
  const auto describesBefore = ec2.describes;
  testing::FakeKubeApi kube2;  // the restarted agent, the pod deleted meanwhile
  Tagger tagger(kube2, ec2, imds, scheduler, executor, scheduler, options);
  Json::Value node;
  node["metadata"]["name"] = "n1";
  node["metadata"]["annotations"][kNodeStateAnnotation] = writeAhead;
  tagger.onNode(ChangeType::Added, node);
  tagger.start();
  scheduler.advance(Duration(1000));
  EXPECT_EQ(ec2.describes, describesBefore + 1) << "one Describe tells what the write did";
  EXPECT_EQ(ec2.tags, (std::map<std::string, std::string>{{"Owner", "someone-else"}}))
      << "the agent's tags are gone, the foreign one stays";
  EXPECT_EQ(std::count(ec2.deleted.begin(), ec2.deleted.end(), "Owner"), 0);
  EXPECT_TRUE(tagger.state().enis.empty());
  EXPECT_TRUE(tagger.idle());
}

// The ENI manager's write-ahead goes through the tagger's node-state writer: answered only once a
// patch carrying it succeeded, refused before the node's annotation is loaded or when the patch
// fails, and cleared by the manager's next clean record.
TEST(TaggerWriteAhead, TheEniManagersRecordIsAnsweredOnlyOnceAPatchCarriesIt) {
  testing::FakeKubeApi kube;
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoEc2 ec2;
  NoImds imds;
  TaggerOptions options;
  options.nodeName = "n1";
  Tagger tagger(kube, ec2, imds, scheduler, executor, scheduler, options);
  auto lastState = [&] {
    for (auto it = kube.patches.rbegin(); it != kube.patches.rend(); ++it) {
      const auto& a = it->second["metadata"]["annotations"][kNodeStateAnnotation];
      if (a.isString()) return decodeNodeState(a.asString());
    }
    return Result<NodeState>(fail(ErrorCode::NotFound, "no node-state patch"));
  };

  std::vector<bool> answers;
  tagger.recordCreating({"storage"}, [&](bool stored) { answers.push_back(stored); });
  EXPECT_EQ(answers, std::vector<bool>{false}) << "the previous run's record is not loaded yet";
  EXPECT_TRUE(kube.patches.empty());

  Json::Value node;
  node["metadata"]["name"] = "n1";
  tagger.onNode(ChangeType::Added, node);
  tagger.start();
  tagger.recordCreating({"storage"}, [&](bool stored) {
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
  tagger.recordCreating({"scratch", "storage"}, [&](bool stored) { answers.push_back(stored); });
  EXPECT_EQ(answers, (std::vector<bool>{false, true, false}));
  kube.patchAnswer = nullptr;

  tagger.setAttachments({}, {}, {});  // the manager's clean pass
  scheduler.advance(Duration(2000));
  auto state = lastState();
  ASSERT_TRUE(state);
  EXPECT_TRUE(state->creating.empty());
}

}  // namespace
}  // namespace eni
