// The tagger's contract against the real stack (see tagger_fixture.h): the seed scenarios, costs,
// restarts, migration from k8s-eni-tagger.
#include "tests/integration/tagger_fixture.h"

#include <unistd.h>

#include <thread>

#include "agent/http/blocking_http_client.h"
#include "tests/support/eventually.h"

namespace eni::tagger_it {
namespace {

// Seed scenarios 1-8 (seeds/eni-tagger-scenarios.md), one test each: the ENI's tags in moto, the
// pod's annotations and condition, and the exact EC2 calls counted at the fault proxy.

TEST_F(TaggerTest, Scenario1NoAnnotationIsSkippedAtZeroCost) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("plain", ips[0], "");
  annotate("plain", "");  // an empty value is "no tags", also free
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(allCalls(), 0u);
  EXPECT_TRUE(eniTags(eni).empty());
  auto pod = getPod("plain");
  EXPECT_EQ(pod.meta.annotations.count(kLastAppliedHashAnnotation), 0u);
  EXPECT_EQ(condition("plain")[0], "");
}

TEST_F(TaggerTest, Scenario2FirstAnnotationCostsOneReadAndOneCreateTags) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();  // the cold start's one Describe of the instance's ENIs is behind us
  // ... and no longer counts as a read for a write (within readFreshFor it would: a burst's
  // passes share one read; TaggerPasses.APassWritesWhatTheLastSecondsReadShowed...).
  std::this_thread::sleep_for(TaggerOptions{}.readFreshFor + Duration(100));
  std::vector<std::string> applied;  // bench/run reads the latency off this line
  logging::setSink([&](const std::string& line) {
    if (line.find("tags applied") != std::string::npos) applied.push_back(line);
  });
  createPod("web", ips[0], R"({"Team":"Platform","CostCenter":"1234"})");
  ASSERT_TRUE(agent.settle());
  logging::setSink(nullptr);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_NE(applied[0].find("\"latency_ms\":"), std::string::npos) << applied[0];
  EXPECT_SYNCED("web", eni, kPlatform, TagSet{});
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "the ENI's tags are read before the write";
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(allCalls(), 2u);
  EXPECT_EQ(condition("web")[2], "the ENI carries the pod's tags");
  auto reasons = eventReasons("web");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "TagsApplied"), reasons.end());
  EXPECT_EQ(agent.tagger.counters().resolveSource(ResolveSource::Imds), 1u);
  EXPECT_EQ(agent.tagger.counters().syncResult(SyncReason::Synced), 1u);
  EXPECT_EQ(agent.tagger.counters().latencies().size(), 1u);
}

class TaggerScenarioTest : public TaggerTest {
 protected:
  /// A pod already synced with `initial`; the proxy's counts start after it.
  void start(const std::string& initial, const TagSet& initialTags) {
    auto [id, ips] = attachedEni();
    eni_ = id;
    agent_ = std::make_unique<Agent>(node_);
    createPod("web", ips[0], initial);
    ASSERT_TRUE(agent_->settle());
    EXPECT_SYNCED("web", eni_, initialTags, TagSet{});
    resetProxy();
  }
  void change(const std::string& value) {
    annotate("web", value);
    ASSERT_TRUE(agent_->settle());
  }
  std::string eni_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(TaggerScenarioTest, Scenario3SameKeyDifferentValueIsOneCreateTags) {
  start(R"({"Team":"Platform","Cost":"1000"})", {{"Team", "Platform"}, {"Cost", "1000"}});
  change(R"({"Team":"Dev","Cost":"1000"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Dev"}, {"Cost", "1000"}}), TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "read before write";
  EXPECT_EQ(allCalls(), 2u);
}

TEST_F(TaggerScenarioTest, Scenario4NewKeyIsOneCreateTags) {
  start(R"({"Team":"Platform"})", {{"Team", "Platform"}});
  change(R"({"Team":"Platform","Cost":"1000"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Platform"}, {"Cost", "1000"}}), TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "read before write";
  EXPECT_EQ(allCalls(), 2u);
}

TEST_F(TaggerScenarioTest, Scenario5RemovedKeyIsOneDeleteTagsAndTheNewHash) {
  start(R"({"Team":"Platform","Cost":"1000"})", {{"Team", "Platform"}, {"Cost", "1000"}});
  change(R"({"Team":"Platform"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Platform"}}), TagSet{});
  EXPECT_EQ(calls("DeleteTags"), 1u);
  EXPECT_EQ(calls("CreateTags"), 1u) << "the hash tag changes with the set";
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "read before write";
  EXPECT_EQ(allCalls(), 3u);
}

TEST_F(TaggerScenarioTest, Scenario6TheSameAnnotationAHundredTimesIsFree) {
  start(R"({"Team":"Platform","Cost":"1000"})", {{"Team", "Platform"}, {"Cost", "1000"}});
  for (int i = 0; i < 100; ++i) annotate("web", R"({"Team":"Platform","Cost":"1000"})");
  // A change on a second pod is the barrier: once it is applied, the 100 writes were seen.
  auto [eni2, ips2] = attachedEni();
  createPod("barrier", ips2[0], "Barrier=yes");
  ASSERT_TRUE(agent_->settle());
  EXPECT_SYNCED("barrier", eni2, (TagSet{{"Barrier", "yes"}}), TagSet{});
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Platform"}, {"Cost", "1000"}}), TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u) << "only the barrier pod's tags";
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "and the read before it";
  EXPECT_EQ(allCalls(), 2u);
}

TEST_F(TaggerScenarioTest, Scenario7ChangesAndRemovalsAreOneCreateTagsAndOneDeleteTags) {
  start(R"({"Team":"Platform","Cost":"1000","Env":"Prod"})",
        {{"Team", "Platform"}, {"Cost", "1000"}, {"Env", "Prod"}});
  change(R"({"Team":"Dev","Env":"Dev","Owner":"Alice"})");
  EXPECT_SYNCED("web", eni_, (TagSet{{"Team", "Dev"}, {"Env", "Dev"}, {"Owner", "Alice"}}),
                TagSet{});
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(calls("DeleteTags"), 1u);
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "read before write";
  EXPECT_EQ(allCalls(), 3u);
}

TEST_F(TaggerTest, Scenario8ForeignHashIsAConflictWithAnEventAndNoWrite) {
  auto [eni, ips] = attachedEni(0, {{kHashTagKey, "0123456789abcdef"}, {"Team", "Other"}});
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("web", ips[0], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  auto c = condition("web");
  EXPECT_EQ(c[0], "False");
  EXPECT_EQ(c[1], "Conflict");
  EXPECT_NE(c[2].find("0123456789abcdef"), std::string::npos) << c[2];
  EXPECT_NE(c[2].find("--allow-shared-eni-tagging"), std::string::npos) << c[2];
  auto reasons = eventReasons("web");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "HashConflict"), reasons.end());
  EXPECT_EQ(allCalls(), 0u) << "no write, and no Describe: the cold start already saw the ENI";
  EXPECT_EQ(eniTags(eni), (TagSet{{kHashTagKey, "0123456789abcdef"}, {"Team", "Other"}}));
  EXPECT_EQ(getPod("web").meta.annotations.count(kLastAppliedHashAnnotation), 0u);
}

// CreateTags answered 200 with <Foo/>, or with a load balancer's HTML page: that is not EC2
// saying yes. The pod gets TaggingFailed, never Synced on it, and once the fault is spent the tags
// land and the pod is Synced.
TEST_F(TaggerTest, CreateTagsAnsweredWithFooOrAnHtmlPageIsNeverSynced) {
  for (const std::string fault : {"bogus", "html200"}) {
    SCOPED_TRACE(fault);
    auto [eni, ips] = attachedEni();
    Agent agent(node_);
    ASSERT_TRUE(agent.settle());
    resetProxy();
    // Every attempt of the first call (the client makes 4) is answered so.
    TestStack::get().controlHttp(
        "POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/rules",
        R"([{"action":"CreateTags","fault":")" + fault + R"(","count":4}])");
    const std::string pod = "web-" + fault;
    createPod(pod, ips[0], R"({"Team":"Platform","CostCenter":"1234"})");
    ASSERT_TRUE(agent.runUntil([&] {
      return agent.tagger.counters().syncResult(SyncReason::TaggingFailed) >= 1;
    })) << "the lie must fail the write";
    EXPECT_TRUE(eniTags(eni).empty());
    EXPECT_EQ(getPod(pod).meta.annotations.count(kLastAppliedHashAnnotation), 0u)
        << "nothing recorded as applied";
    EXPECT_EQ(faults("CreateTags"), 4u);
    ASSERT_TRUE(agent.settle());
    EXPECT_SYNCED(pod, eni, kPlatform, TagSet{});
    EXPECT_EQ(calls("CreateTags"), 5u) << "the four lies, then the write that landed";
  }
}

// One stale IMDS key (listed, answering 404) on one interface sinks at most that interface. A
// stale ipv4-prefix reads as none: pods on every interface resolve through IMDS, with no
// lookup by IP in EC2. A stale local-ipv4s skips that interface for the read: its pod goes to EC2
// (one lookup by IP), the pod on the other interface stays on IMDS.
TEST_F(TaggerTest, AStaleImdsKeySinksAtMostItsOwnInterface) {
  ImdsModesReset reset;
  auto macOf = [&](const std::string& eni) {
    auto d = setupEc2_->describeNetworkInterfaces({eni}, {});
    return d && !d->empty() ? d->front().macAddress : std::string();
  };
  const std::string tags = R"({"Team":"Platform","CostCenter":"1234"})";
  for (const std::string key : {"ipv4-prefix", "local-ipv4s"}) {
    SCOPED_TRACE(key);
    auto [healthy, healthyIps] = attachedEni();
    auto [stale, staleIps] = attachedEni();
    imdsControl("stale", R"([{"mac":")" + macOf(stale) + R"(","key":")" + key + R"("}])");
    Agent agent(node_);
    ASSERT_TRUE(agent.settle());
    resetProxy();
    createPod("healthy-" + key, healthyIps[0], tags);
    createPod("stale-" + key, staleIps[0], tags);
    ASSERT_TRUE(agent.settle());
    EXPECT_SYNCED("healthy-" + key, healthy, kPlatform, TagSet{});
    EXPECT_SYNCED("stale-" + key, stale, kPlatform, TagSet{});
    const auto& counters = agent.tagger.counters();
    // (The reads before the writes are one Describe by ENI ID per pass; the lookups by IP that
    // an unusable IMDS would cost are what is counted here.)
    if (key == "ipv4-prefix") {
      EXPECT_EQ(counters.resolveSource(ResolveSource::Ec2), 0u) << "no lookup by IP in EC2";
      EXPECT_EQ(counters.resolveSource(ResolveSource::Imds), 2u);
    } else {
      EXPECT_EQ(counters.resolveSource(ResolveSource::Ec2), 1u)
          << "for the skipped interface's pod only";
      EXPECT_EQ(counters.resolveSource(ResolveSource::Imds), 1u);
    }
  }
}

TEST_F(TaggerTest, RestartWithSyncedPodsCostsNoEc2Call) {
  std::vector<std::string> enis;
  {
    Agent agent(node_);
    for (int i = 0; i < 50; ++i) {
      auto [eni, ip] = branchEni();
      enis.push_back(eni);
      createPod("p" + std::to_string(i), ip, "Team=Platform,Index=" + std::to_string(i),
                podEni(eni, ip));
    }
    ASSERT_TRUE(agent.settle(120000));
    ASSERT_EQ(agent.tagger.state().enis.size(), 50u);
    agent.runUntil([] { return false; }, 300);  // let the debounced node-state write land
  }
  resetProxy();
  Agent restarted(node_);
  ASSERT_TRUE(restarted.settle());
  EXPECT_EQ(allCalls(), 0u) << "the node state is the warm cache: no Describe, no write";
  EXPECT_EQ(restarted.tagger.counters().resolveSource(ResolveSource::Cache), 50u);
  EXPECT_EQ(restarted.tagger.counters().resolveSource(ResolveSource::PodAnnotation), 0u);
  for (const auto& eni : {enis.front(), enis.back()}) EXPECT_EQ(eniTags(eni).count("Team"), 1u);
}

TEST_F(TaggerTest, FiftyPodsWithIdenticalTagsShareCreateTags) {
  std::vector<std::pair<std::string, std::string>> enis;
  for (int i = 0; i < 50; ++i) enis.push_back(branchEni());
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  for (int i = 0; i < 50; ++i) {
    createPod("p" + std::to_string(i), enis[i].second, "Team=Platform,CostCenter=1234",
              podEni(enis[i].first, enis[i].second));
  }
  ASSERT_TRUE(agent.settle(120000));
  EXPECT_LE(calls("CreateTags"), 3u);
  // Each pass reads its new pods' branch ENIs once, to check they are this node's and hold the
  // pods' IPs, and that read is also the one before its CreateTags.
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), calls("CreateTags"));
  EXPECT_EQ(agent.tagger.counters().resolveSource(ResolveSource::PodAnnotation), 50u);
  for (const auto& [eni, ip] : enis) EXPECT_EQ(eniTags(eni), withHash(kPlatform)) << eni;
}

TEST_F(TaggerTest, InvalidAnnotationsCostNothingAndKeepWhatWasApplied) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  createPod("web", ips[0], "Team=Platform,CostCenter=1234");
  ASSERT_TRUE(agent.settle());
  ASSERT_EQ(eniTags(eni), withHash(kPlatform));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "malformed JSON"},
      {R"({"Team":1})", "must be a JSON string"},
      {R"(["a"])", "must be an object"},
      {R"({"a":"1","a":"2"})", "duplicate"},
      {"Team=a,Team=b", "appears twice"},
      {"Team", "is not Key=Value"},
      {"Team=a,,b=c", "empty entry"},
      {"Team=a,", "empty entry"},
      {"=v", "key is empty"},
      {std::string(128, 'k') + "=v", "the limit is 127"},
      {"k=" + std::string(256, 'v'), "the limit is 255"},
      {"Team=a#b", "contains"},
      {"Te!am=x", "contains"},
      {"Team=a*b", "contains"},
      {"Team=semi;c", "contains"},
      {"Team=caf\xc3\xa9", "contains"},
      {"Team=<x>", "contains"},
      {"Team=a\"b", "contains"},
      {"aws:x=y", "reserved prefix aws:"},
      {"AWS:x=y", "reserved prefix aws:"},
      {"kubernetes.io/cluster/c=owned", "reserved prefix kubernetes.io/cluster/"},
      {"eni-tagger.io/hash=x", "agent's own"},
      {std::string(10001, 'a'), "the limit is 10000"},
      {R"({"a":"b"}x)", "malformed JSON"},
      {R"({"a":null})", "must be a JSON string"},
      {R"({"a":{"b":"c"}})", "must be a JSON string"},
      {",", "empty entry"},
      {R"({"":"v"})", "key is empty"},
      {"Team=x|y", "contains"},
      {"Team=x\\y", "contains"},
      {"Team=x%y", "contains"}};
  std::string tooMany;
  for (int i = 0; i < 51; ++i)
    tooMany += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  std::vector<std::pair<std::string, std::string>> all = bad;
  all.emplace_back(tooMany, "51 tags");
  ASSERT_GE(all.size(), 30u);
  resetProxy();
  for (const auto& [value, reason] : all) {
    annotate("web", value);
    ASSERT_TRUE(agent.settle());
    auto c = condition("web");
    EXPECT_EQ(c[0], "False") << value.substr(0, 40);
    EXPECT_EQ(c[1], "InvalidTags") << value.substr(0, 40);
    EXPECT_NE(c[2].find(reason), std::string::npos) << c[2];
  }
  EXPECT_EQ(allCalls(), 0u) << "no AWS call for any invalid annotation";
  EXPECT_EQ(eniTags(eni), withHash(kPlatform)) << "the tags already applied stay";
  auto reasons = eventReasons("web");
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "InvalidTags"), reasons.end());
  // Fixing the annotation resumes from the applied state.
  annotate("web", "Team=Platform,CostCenter=1234");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "Synced");
  EXPECT_EQ(allCalls(), 0u) << "back to what is applied: nothing to write";
}

TEST_F(TaggerTest, PodDeletedWhileTheAgentIsDownLosesOnlyItsOwnTags) {
  auto [eni, ips] = attachedEni(0, {{"Owner", "finance"}});
  {
    Agent agent(node_);
    createPod("web", ips[0], "Team=Platform,CostCenter=1234");
    ASSERT_TRUE(agent.settle());
    ASSERT_EQ(eniTags(eni).count("Team"), 1u);
    agent.runUntil([] { return false; }, 300);  // the node-state write lands
  }
  deletePod("web");  // the agent is down
  Agent restarted(node_);
  ASSERT_TRUE(restarted.settle());
  EXPECT_EQ(eniTags(eni), (TagSet{{"Owner", "finance"}}))
      << "owned tags and hash gone, the foreign tag stays";
  EXPECT_EQ(restarted.tagger.state().enis.count(eni), 0u);
}

// --shared-eni-tagging=merge: an ENI several pods share gets the tags they agree on.
TEST_F(TaggerTest, SharedEniMergesAgreeingPodsAndFlagsTheDisagreement) {
  auto [eni, ips] = attachedEni(2);
  ASSERT_EQ(ips.size(), 3u);
  TaggerOptions merge;
  merge.sharedEnis = SharedEniPolicy::Merge;
  Agent agent(node_, merge);
  createPod("a", ips[1], "Team=Platform,App=a");
  createPod("b", ips[2], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("b")[1], "Synced");
  EXPECT_EQ(condition("a")[1], "Synced");
  EXPECT_EQ(eniTags(eni), withHash({{"Team", "Platform"}, {"App", "a"}}));
  annotate("b", "Team=Platform,App=b");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("a")[1], "Conflict");
  EXPECT_EQ(condition("b")[1], "Conflict");
  EXPECT_EQ(eniTags(eni)["App"], "a") << "a disagreeing key keeps its applied value";
}

TEST_F(TaggerTest, DryRunWritesNothingAndSaysSo) {
  auto [eni, ips] = attachedEni();
  TaggerOptions options;
  options.dryRun = true;
  Agent agent(node_, options);
  createPod("web", ips[0], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "DryRun");
  EXPECT_NE(condition("web")[2].find("would send CreateTags"), std::string::npos)
      << condition("web")[2];
  EXPECT_EQ(calls("CreateTags"), 0u);
  EXPECT_TRUE(eniTags(eni).empty());
}

TEST_F(TaggerTest, K8sEniTaggerPodsAreAdoptedWithoutAWrite) {
  auto [eni, ips] =
      attachedEni(0, {{"Team", "Platform"}, {kHashTagKey, tagHash({{"Team", "Platform"}})}});
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("legacy", ips[0], R"({"Team":"Platform"})",
            {{kLastAppliedTagsAnnotation, R"({"Team":"Platform"})"},
             {kLastAppliedHashAnnotation, tagHash({{"Team", "Platform"}})}});
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("legacy")[1], "Synced");
  EXPECT_EQ(allCalls(), 0u);
  EXPECT_EQ(agent.tagger.state().enis.at(eni).tags, (TagSet{{"Team", "Platform"}}));
}

TEST_F(TaggerTest, DriftIsRepairedOnResync) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  createPod("web", ips[0], "Team=Platform,CostCenter=1234");
  ASSERT_TRUE(agent.settle());
  ASSERT_TRUE(setupEc2_->deleteTags({eni}, {{"CostCenter", ""}}));  // someone removes an owned tag
  resetProxy();
  agent.tagger.resync();
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "one Describe for all of the node's ENIs";
  EXPECT_EQ(calls("CreateTags"), 1u);
  EXPECT_EQ(eniTags(eni), withHash(kPlatform));
}

TEST_F(TaggerTest, SubnetIdsLimitTaggingEvenForBranchEnis) {
  auto [inside, insideIp] = branchEni(TestStack::get().subnetA);
  auto [outside, outsideIp] = branchEni(TestStack::get().subnetC);
  TaggerOptions options;
  options.subnetIds = {TestStack::get().subnetA};
  Agent agent(node_, options);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("in", insideIp, "Team=Platform", podEni(inside, insideIp));
  createPod("out", outsideIp, "Team=Platform", podEni(outside, outsideIp));
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(eniTags(inside), withHash({{"Team", "Platform"}}));
  EXPECT_TRUE(eniTags(outside).empty());
  // Not silence: the pod is told which subnet, as k8s-eni-tagger told it.
  auto c = condition("out");
  EXPECT_EQ(c[0], "False");
  EXPECT_EQ(c[1], "ENIValidationFailed");
  EXPECT_NE(c[2].find("subnet " + TestStack::get().subnetC), std::string::npos) << c[2];
  EXPECT_EQ(eventType("out", "ENIValidationFailed"), "Warning");
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "one Describe told both ENIs' subnets";
  EXPECT_EQ(calls("CreateTags"), 1u) << "the inside ENI's only";
}

// --shared-eni-tagging=refuse, the default (k8s-eni-tagger's rule): a pod on an ENI with more
// than one private IPv4 (VPC CNI's secondary-IP mode) gets ENIValidationFailed, a Warning event,
// and its ENI no write, where eni-agent used to tag (merge) it.
TEST_F(TaggerTest, ASharedEniIsRefusedByDefault) {
  auto [eni, ips] = attachedEni(2);
  ASSERT_EQ(ips.size(), 3u);
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("web", ips[1], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  auto c = condition("web");
  EXPECT_EQ(c[0], "False");
  EXPECT_EQ(c[1], "ENIValidationFailed");
  EXPECT_NE(c[2].find("holds 3 private IPv4 addresses"), std::string::npos) << c[2];
  EXPECT_EQ(eventType("web", "ENIValidationFailed"), "Warning");
  EXPECT_EQ(calls("CreateTags") + calls("DeleteTags"), 0u);
  EXPECT_TRUE(eniTags(eni).empty());
  EXPECT_EQ(agent.tagger.counters().syncResult(SyncReason::EniValidationFailed), 1u);
}

// The node's primary ENI (device index 0) is tagged only under --shared-eni-tagging=any; merge
// refuses it too.
TEST_F(TaggerTest, ThePrimaryEniIsRefusedUnderMerge) {
  auto attached = setupEc2_->describeNetworkInterfaces(
      {}, {{"attachment.instance-id", {TestStack::get().instanceId}}});
  ASSERT_TRUE(attached) << attached.error().describe();
  auto primary = std::find_if(attached->begin(), attached->end(), [](const NetworkInterface& e) {
    return e.attachment && e.attachment->deviceIndex == 0;
  });
  ASSERT_NE(primary, attached->end());
  const std::string eni = primary->id;
  const TagSet before = eniTags(eni);
  TaggerOptions merge;
  merge.sharedEnis = SharedEniPolicy::Merge;
  Agent agent(node_, merge);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  createPod("web", primary->privateIpAddress, "Team=Platform");
  ASSERT_TRUE(agent.settle());
  auto c = condition("web");
  EXPECT_EQ(c[1], "ENIValidationFailed");
  EXPECT_NE(c[2].find("primary ENI (device index 0)"), std::string::npos) << c[2];
  EXPECT_EQ(calls("CreateTags") + calls("DeleteTags"), 0u);
  EXPECT_EQ(eniTags(eni), before);
}

// k8s-eni-tagger's ConfigMap eni-tagger-cache (pod IP -> {"info":{"ID",...},"pod_uid"}) is read
// once at start and is only a hint, since anyone who may write it could name any ENI: the ENI it
// names is read and checked before a write. A true entry places a pod IMDS does not know (a branch
// ENI without its pod-eni annotation); a false one (naming an ENI that does not hold the pod's IP)
// gets nothing written there, is dropped, and the pod is looked up in EC2 and tagged where it is.
// The ConfigMap is never written.
TEST_F(TaggerTest, K8sEniTaggersConfigMapIsOnlyAHint) {
  auto [web, webIp] = branchEni();
  auto [other, otherIp] = branchEni();
  createPod("web", webIp, "Team=Web");
  createPod("forged", otherIp, "Team=Forged");
  auto entry = [](const std::string& eni, const std::string& uid) {
    return R"({"info":{"ID":")" + eni + R"(","SubnetID":"subnet-x","IsShared":false},"pod_uid":")" +
           uid + R"("})";
  };
  Json::Value cm;
  cm["metadata"]["name"] = "eni-tagger-cache";
  cm["data"][webIp] = entry(web, getPod("web").meta.uid);
  cm["data"][otherIp] = entry(web, getPod("forged").meta.uid);  // names the wrong ENI
  auto created = call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::configMaps(), "kube-system", "", ""}, cm, done);
  });
  ASSERT_TRUE(created) << created.error().describe();
  struct Cleanup {
    ~Cleanup() {
      (void)testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                 TestStack::get().adminKubeconfig, "-n", "kube-system", "delete",
                                 "configmap", "eni-tagger-cache", "--ignore-not-found"});
    }
  } cleanup;
  const std::string version = stringField(objectField(*created, "metadata"), "resourceVersion");
  TaggerOptions options;
  options.eniTaggerCacheNamespace = "kube-system";
  Agent agent(node_, options);
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "Synced");
  EXPECT_EQ(eniTags(web), withHash({{"Team", "Web"}})) << "the forged hint wrote nothing here";
  EXPECT_EQ(condition("forged")[1], "Synced") << condition("forged")[2];
  EXPECT_EQ(eniTags(other), withHash({{"Team", "Forged"}})) << "found again, in EC2";
  EXPECT_EQ(agent.tagger.counters().resolveSource(ResolveSource::EniTaggerCache), 2u);
  EXPECT_EQ(agent.tagger.counters().resolveSource(ResolveSource::Ec2), 1u) << "the forged one";
  auto after = call([&](auto done) {
    admin_->get(ObjectRef{ResourceKind::configMaps(), "kube-system", "eni-tagger-cache", ""}, done);
  });
  ASSERT_TRUE(after);
  EXPECT_EQ(stringField(objectField(*after, "metadata"), "resourceVersion"), version)
      << "never written";
}

// The migration: k8s-eni-tagger's Deployment arguments as its Helm chart renders them (its
// defaults, plus watchNamespace and leader election; subnetIDs through ENI_TAGGER_SUBNET_IDS, as
// its values file suggests), given unchanged to the eni-agent binary, with the node's name and the
// kubeconfig as the DaemonSet gives them. The cluster and EC2 as k8s-eni-tagger left them: a pod
// it synced (its ENI carries the tags and the hash), a pod on a shared ENI and one outside the
// subnets (it refused both), a pod of another namespace. eni-agent starts, adopts the synced pod
// without a write, tags a new pod, refuses the same pods with the same reason, ignores the other
// namespace, and says once for each flag that means nothing here why.
TEST_F(TaggerTest, K8sEniTaggerChartArgumentsTagAsBefore) {
  const TagSet platform{{"Team", "Platform"}};
  auto [synced, syncedIps] =
      attachedEni(0, {{"Team", "Platform"}, {kHashTagKey, tagHash(platform)}});
  auto [fresh, freshIps] = attachedEni();
  auto [shared, sharedIps] = attachedEni(2);
  auto [outside, outsideIp] = branchEni(TestStack::get().subnetA);
  auto [theirs, theirIps] = attachedEni();
  const std::string other = otherNamespace();
  createPod("legacy", syncedIps[0], R"({"Team":"Platform"})",
            {{kLastAppliedTagsAnnotation, R"({"Team":"Platform"})"},
             {kLastAppliedHashAnnotation, tagHash(platform)}});
  createPod("fresh", freshIps[0], "Team=Platform");
  createPod("shared", sharedIps[1], "Team=Platform");
  createPod("outside", outsideIp, "Team=Platform", podEni(outside, outsideIp));
  createPod("theirs", theirIps[0], "Team=Platform", {}, other);
  resetProxy();
  const std::string metricsPort = std::to_string(testing::freePort());
  const std::string healthPort = std::to_string(testing::freePort());
  std::vector<std::string> env;
  for (const auto& kv : testing::agentEnv()) {
    if (kv.rfind("ENI_AGENT_", 0) != 0) env.push_back(kv);  // only what the chart gives
  }
  env.push_back("NODE_NAME=" + node_);
  env.push_back("KUBECONFIG=" + TestStack::get().agentKubeconfig);
  env.push_back("ENI_TAGGER_SUBNET_IDS=" + TestStack::get().subnetC);
  testing::BackgroundProcess agent(
      {testing::agentBinary(), "--annotation-key=eni-tagger.io/tags",
       "--max-concurrent-reconciles=1", "--metrics-bind-address=" + metricsPort,
       "--health-probe-bind-address=:" + healthPort, "--watch-namespace=" + ns_, "--leader-elect",
       "--cache-batch-interval=2s", "--cache-batch-size=20", "--aws-rate-limit-qps=10",
       "--aws-rate-limit-burst=20", "--pprof-bind-address=0"},
      env);
  ASSERT_TRUE(agent.waitForOutput("\"msg\":\"ready\"", 60000)) << agent.output();
  ASSERT_TRUE(testing::eventually(
      [&] {
        return condition("fresh")[1] == "Synced" && condition("legacy")[1] == "Synced" &&
               !condition("shared")[1].empty() && !condition("outside")[1].empty();
      },
      Duration(60000)))
      << agent.output();
  EXPECT_EQ(eniTags(fresh), withHash(platform));
  EXPECT_EQ(eniTags(synced), withHash(platform)) << "adopted as it was";
  EXPECT_EQ(condition("shared")[1], "ENIValidationFailed") << condition("shared")[2];
  EXPECT_TRUE(eniTags(shared).empty());
  EXPECT_EQ(condition("outside")[1], "ENIValidationFailed");
  EXPECT_NE(condition("outside")[2].find(TestStack::get().subnetA), std::string::npos);
  EXPECT_TRUE(eniTags(outside).empty());
  EXPECT_EQ(condition("theirs", other)[0], "") << "--watch-namespace";
  EXPECT_TRUE(eniTags(theirs).empty());
  EXPECT_EQ(calls("CreateTags"), 1u) << "the new pod's only";
  EXPECT_EQ(calls("DeleteTags"), 0u);
  const std::string out = agent.output();
  for (const std::string flag :
       {"leader-elect", "max-concurrent-reconciles", "cache-batch-interval", "cache-batch-size",
        "pprof-bind-address"}) {
    const std::string line = "flag --" + flag + " of k8s-eni-tagger has no effect here, because ";
    const auto first = out.find(line);
    EXPECT_NE(first, std::string::npos) << flag << "\n" << out;
    EXPECT_EQ(out.find(line, first + 1), std::string::npos) << "once: " << flag;
  }
  // A bare port is every address, as k8s-eni-tagger bound it.
  BlockingHttpClient http;
  HttpRequest request;
  request.url = "http://127.0.0.1:" + metricsPort + "/metrics";
  auto metrics = http.perform(request);
  ASSERT_TRUE(metrics) << metrics.error().message;
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
}

// --watch-namespace: only that namespace's pods are listed and watched.
TEST_F(TaggerTest, WatchNamespaceTagsOnlyThatNamespacesPods) {
  auto [mine, mineIps] = attachedEni();
  auto [theirs, theirIps] = attachedEni();
  const std::string other = otherNamespace();
  Agent agent(node_, {}, ns_);
  createPod("web", mineIps[0], "Team=Platform");
  createPod("web", theirIps[0], "Team=Platform", {}, other);
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "Synced");
  EXPECT_EQ(eniTags(mine), withHash({{"Team", "Platform"}}));
  EXPECT_EQ(condition("web", other)[0], "") << "a pod of another namespace is not seen";
  EXPECT_TRUE(eniTags(theirs).empty());
  EXPECT_EQ(agent.view.pods().objects().size(), 1u) << "the API server filtered, not the agent";
}

TEST_F(TaggerTest, K8sEniTaggerFinalizerIsRemovedAfterCleanup) {
  auto [eni, ips] = attachedEni(0, {{"Owner", "finance"}});
  Agent agent(node_);
  createPod("legacy", ips[0], "Team=Platform");
  Json::Value patch;
  patch["metadata"]["finalizers"][0] = kOldTaggerFinalizer;
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns_, "legacy", ""}, PatchType::Merge, patch, {},
                  done);
  }));
  ASSERT_TRUE(agent.settle());
  ASSERT_EQ(eniTags(eni).count("Team"), 1u);
  deletePod("legacy");  // held by the finalizer until the agent has cleaned up
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = await<Json::Value>(loop_, [&](auto done) {
      admin_->get(ObjectRef{ResourceKind::pods(), ns_, "legacy", ""}, done);
    });
    return !r && r.error().code == ErrorCode::NotFound;
  }));
  EXPECT_EQ(eniTags(eni), (TagSet{{"Owner", "finance"}})) << "cleaned up before the finalizer went";
}

}  // namespace
}  // namespace eni::tagger_it
