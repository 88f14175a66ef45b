// What a pod, a peer or another node can forge, against the real stack (issue "Security: never act
// on what a pod, a peer or another node can forge"): each test is a repro that made the agent write
// or remove what it does not own, and shows that it no longer does.
#include "tests/integration/tagger_fixture.h"

namespace eni::tagger_it {
namespace {

class TaggerSecurityTest : public TaggerTest {
 protected:
  /// Writes `state` as the node's eni-agent.io/state annotation, as anyone allowed to patch the
  /// Node could.
  void forgeNodeState(const NodeState& state) {
    Json::Value patch;
    patch["metadata"]["annotations"][kNodeStateAnnotation] = *encodeNodeState(state);
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::nodes(), "", node_, ""}, PatchType::Merge, patch, {},
                    done);
    }));
  }
  /// An ENI of its own that is attached to no instance and is not a branch, with `tags`.
  std::pair<std::string, std::string> looseEni(std::vector<Tag> tags) {
    CreateEniRequest request;
    request.subnetId = TestStack::get().subnetC;
    request.tags = std::move(tags);
    auto eni = setupEc2_->createNetworkInterface(request);
    EXPECT_TRUE(eni) << eni.error().describe();
    return {eni->id, eni->privateIpAddress};
  }
  std::uint64_t writes() { return calls("CreateTags") + calls("DeleteTags"); }
};

// A pod annotation could give a VPC CNI ENI, shared with other pods, the ENI manager's ownership
// tags (managed-by, instance-id, Node, NodeENI, SubnetID): the manager then detached and deleted
// it. Those keys are reserved: the pod gets InvalidTags and nothing of it reaches the ENI.
TEST_F(TaggerSecurityTest, APodCannotGiveItsEniTheEniManagersOwnershipTags) {
  auto [eni, ips] = attachedEni(2);
  // Under merge, the mode that tags a shared ENI at all (the default refuses it outright).
  TaggerOptions merge;
  merge.sharedEnis = SharedEniPolicy::Merge;
  Agent agent(node_, merge);
  createPod("innocent", ips[1], R"({"Team":"A"})");
  createPod("evil", ips[2],
            R"({"Node":")" + node_ + R"(","NodeENI":"ghost","SubnetID":")" +
                TestStack::get().subnetC +
                R"(","eni-agent.io/managed-by":"eni-agent","eni-agent.io/instance-id":")" +
                TestStack::get().instanceId + R"("})");
  ASSERT_TRUE(agent.settle());
  auto c = condition("evil");
  EXPECT_EQ(c[1], "InvalidTags") << c[2];
  EXPECT_NE(c[2].find("reserved"), std::string::npos) << c[2];
  EXPECT_EQ(condition("innocent")[1], "Synced");
  EXPECT_EQ(eniTags(eni), withHash({{"Team", "A"}})) << "only the innocent pod's tag";
  // The same keys one at a time, and a Name in the manager's form.
  for (const std::string& bad :
       {std::string("Node=") + node_, std::string("NodeENI=ghost"), std::string("SubnetID=x"),
        std::string("eni-agent.io/managed-by=eni-agent"), std::string("Name=nodeeni-ghost-n-1"),
        std::string("node.k8s.amazonaws.com/no_manage=true")}) {
    annotate("evil", bad);
    ASSERT_TRUE(agent.settle());
    EXPECT_EQ(condition("evil")[1], "InvalidTags") << bad;
  }
  EXPECT_EQ(eniTags(eni), withHash({{"Team", "A"}}));
}

// The pod-eni annotation was trusted: its first eniId was taken even when no entry had the pod's
// IP, and the ENI it named was never checked. Anyone who may edit a pod could have another team's
// ENI retagged.
TEST_F(TaggerSecurityTest, APodEniAnnotationNamingAnEniThatIsNotThisNodesIsRefused) {
  auto [foreign, foreignIp] = looseEni({{"Owner", "another-team"}});
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  resetProxy();
  // The entry's privateIp is not the pod's: the annotation says nothing about this pod.
  createPod("a", "10.0.253.9", R"({"Owner":"attacker"})",
            {{kPodEniAnnotation, testing::podEniAnnotation(foreign, "10.0.252.1")}});
  // The entry matches the pod's IP, but the ENI is attached nowhere and is no branch of this
  // node's trunk.
  createPod("b", foreignIp, R"({"Owner":"attacker"})", podEni(foreign, foreignIp));
  // A real branch of this node's trunk, named for an IP it does not hold.
  auto [branch, branchIp] = branchEni("", {{"Owner", "another-team"}});
  createPod("c", "10.0.251.7", R"({"Owner":"attacker"})", podEni(branch, "10.0.251.7"));
  // "a" is looked up again every retry delay (its IP is on no ENI), so the agent never idles:
  // wait for the three verdicts instead.
  ASSERT_TRUE(agent.runUntil([&] {
    for (const char* pod : {"a", "b", "c"}) {
      if (condition(pod)[1] != "ENILookupFailed") return false;
    }
    return true;
  })) << condition("a")[2]
      << " / " << condition("b")[2] << " / " << condition("c")[2];
  EXPECT_NE(condition("b")[2].find("not attached to this node's instance"), std::string::npos)
      << condition("b")[2];
  EXPECT_NE(condition("c")[2].find("does not hold 10.0.251.7"), std::string::npos)
      << condition("c")[2];
  EXPECT_EQ(eniTags(foreign), (TagSet{{"Owner", "another-team"}}));
  EXPECT_EQ(eniTags(branch), (TagSet{{"Owner", "another-team"}}));
  EXPECT_EQ(writes(), 0u);
}

// The ownership checks ran only when a Describe had shown the ENI's tags. An ENI that VPC CNI
// attached after the agent's start, found through IMDS, was written blind: a foreign value was
// overwritten (and later removed), a foreign hash ignored.
TEST_F(TaggerSecurityTest, AnEniAttachedAfterTheStartIsReadBeforeItIsWritten) {
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());  // the cold start's Describe is behind it
  auto [finance, financeIps] = attachedEni(0, {{"Team", "finance"}});
  auto [hashed, hashedIps] = attachedEni(0, {{kHashTagKey, "0123456789abcdef"}});
  resetProxy();
  createPod("platform", financeIps[0], "Team=Platform,Env=prod");
  createPod("other", hashedIps[0], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  auto c = condition("platform");
  EXPECT_EQ(c[1], "Conflict") << c[2];
  EXPECT_NE(c[2].find("Team=finance"), std::string::npos) << c[2];
  TagSet want = withHash({{"Env", "prod"}});
  want["Team"] = "finance";
  EXPECT_EQ(eniTags(finance), want)
      << "the pod's other tags are applied; a value someone else set is not overwritten";
  EXPECT_EQ(condition("other")[1], "Conflict") << condition("other")[2];
  EXPECT_EQ(eniTags(hashed), (TagSet{{kHashTagKey, "0123456789abcdef"}}));
  EXPECT_GE(calls("DescribeNetworkInterfaces"), 1u);
  // Deleting the pod removes what the agent applied, and leaves the foreign Team alone.
  deletePod("platform");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(eniTags(finance), (TagSet{{"Team", "finance"}}));
}

// Seed scenario 8, late: another tool's hash set after the agent tagged, then the annotation
// changes. The agent's cache still showed its own hash, and the write went through as Synced.
TEST_F(TaggerSecurityTest, ALateForeignHashIsAConflictAtTheNextChange) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  createPod("web", ips[0], "Team=Platform");
  ASSERT_TRUE(agent.settle());
  ASSERT_EQ(condition("web")[1], "Synced");
  ASSERT_TRUE(setupEc2_->createTags({eni}, {{kHashTagKey, "fedcba9876543210"}, {"Team", "Ops"}}));
  resetProxy();
  annotate("web", "Team=Dev");
  ASSERT_TRUE(agent.settle());
  auto c = condition("web");
  EXPECT_EQ(c[1], "Conflict") << c[2];
  EXPECT_NE(c[2].find("fedcba9876543210"), std::string::npos) << c[2];
  EXPECT_EQ(eniTags(eni), (TagSet{{kHashTagKey, "fedcba9876543210"}, {"Team", "Ops"}}));
  EXPECT_EQ(writes(), 0u);
  EXPECT_EQ(calls("DescribeNetworkInterfaces"), 1u) << "one read, before the write it stopped";
}

// DeleteTags names the value the agent wrote: a key someone changed since is not removed.
TEST_F(TaggerSecurityTest, RemovingAPodsTagsLeavesAKeySomeoneChangedSince) {
  auto [eni, ips] = attachedEni();
  Agent agent(node_);
  createPod("web", ips[0], "Team=Platform,Env=prod");
  ASSERT_TRUE(agent.settle());
  ASSERT_TRUE(setupEc2_->createTags({eni}, {{"Env", "staging"}}));  // someone else's value now
  deletePod("web");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(eniTags(eni), (TagSet{{"Env", "staging"}}));
}

// Forged node-state records made the agent remove a foreign Owner tag it claimed as owned, and
// remove tags from another instance's ENI.
TEST_F(TaggerSecurityTest, ForgedNodeStateRecordsRemoveNothing) {
  auto [attached, attachedIps] = attachedEni(0, {{"Owner", "finance"}});
  auto [loose, looseIp] = looseEni({{"Owner", "finance"}});
  const TagSet claimed{{"Owner", "finance"}};
  ASSERT_TRUE(setupEc2_->createTags({loose}, {{kHashTagKey, tagHash(claimed)}}));
  NodeState forged;
  forged.instanceId = TestStack::get().instanceId;
  for (const auto& id : {attached, loose}) {
    EniRecord r;
    r.tags = claimed;
    r.hash = tagHash(claimed);
    r.pods["gone/pod"] = PodRecord{"uid-gone", "10.0.250.1"};
    forged.enis[id] = r;
  }
  forgeNodeState(forged);
  {
    Agent agent(node_);
    ASSERT_TRUE(agent.settle());
  }
  EXPECT_EQ(eniTags(attached), (TagSet{{"Owner", "finance"}}))
      << "the ENI does not carry the record's hash: the record owns nothing";
  EXPECT_EQ(eniTags(loose), withHash(claimed)) << "not this node's ENI: nothing is removed";
  EXPECT_EQ(writes(), 0u);
  // Records made on another instance are not even read.
  forged.instanceId = "i-0000000000000000f";
  ASSERT_TRUE(setupEc2_->createTags({attached}, {{kHashTagKey, tagHash(claimed)}}));
  forgeNodeState(forged);
  resetProxy();
  Agent restarted(node_);
  ASSERT_TRUE(restarted.settle());
  EXPECT_EQ(eniTags(attached), withHash(claimed));
  EXPECT_EQ(writes(), 0u);
  EXPECT_TRUE(restarted.tagger.state().enis.empty());
  EXPECT_EQ(restarted.tagger.state().instanceId, TestStack::get().instanceId);
}

// Past 64 KiB of node state the agent went on writing tags it did not record ("writing tags
// without it"), and after a restart with the pods deleted they stayed on the ENIs for good.
TEST_F(TaggerSecurityTest, TagsThatTheNodeStateCannotRecordAreNeverWritten) {
  // 7 pods, each with close to the documented maxima (26 tags of 127-character keys and
  // 240-character values: 9.7 KB of the 10,000-byte annotation), each on its own ENI.
  std::vector<std::string> enis;
  auto agent = std::make_unique<Agent>(node_);
  for (int p = 0; p < 7; ++p) {
    auto [eni, ips] = attachedEni();
    enis.push_back(eni);
    Json::Value tags(Json::objectValue);
    for (int t = 0; t < 26; ++t) {
      std::string key = "pod" + std::to_string(p) + "tag" + std::to_string(t) + "-";
      tags[key + std::string(127 - key.size(), 'k')] = std::string(240, 'v');
    }
    createPod("big" + std::to_string(p), ips[0], toJson(tags));
  }
  ASSERT_TRUE(agent->settle(120000));
  int synced = 0, refused = 0;
  for (int p = 0; p < 7; ++p) {
    auto c = condition("big" + std::to_string(p));
    const bool tagged = eniTags(enis[p]).size() == 27;
    if (c[1] == "Synced") {
      ++synced;
      EXPECT_TRUE(tagged) << p;
    } else {
      ++refused;
      EXPECT_EQ(c[1], "TaggingFailed") << c[2];
      EXPECT_NE(c[2].find("64 KiB"), std::string::npos) << c[2];
      EXPECT_TRUE(eniTags(enis[p]).empty()) << "no tag the node state does not record";
    }
  }
  EXPECT_GE(synced, 3);
  EXPECT_GE(refused, 1);
  auto state = encodeNodeState(agent->tagger.state());
  ASSERT_TRUE(state) << state.error().message;
  agent->runUntil([] { return false; }, 300);  // the debounced node-state write lands
  // Stopped, every pod deleted meanwhile, restarted: every tag it wrote is removed, none leaks.
  agent.reset();
  for (int p = 0; p < 7; ++p) deletePod("big" + std::to_string(p));
  agent = std::make_unique<Agent>(node_);
  ASSERT_TRUE(agent->settle(120000));
  for (const auto& eni : enis) EXPECT_TRUE(eniTags(eni).empty()) << eni;
}

// 49 tags and the hash fill EC2's 50; with tags others set on the ENI the pod's must be fewer.
// EC2's permanent refusal used to be retried every 5 s for ever.
TEST_F(TaggerSecurityTest, TooManyTagsAreInvalidAndA4xxIsNotRetried) {
  auto [eni, ips] = attachedEni(0, {{"Foreign1", "x"}, {"Foreign2", "y"}});
  Agent agent(node_);
  ASSERT_TRUE(agent.settle());
  std::string many;
  for (int i = 0; i < 48; ++i) many += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  resetProxy();
  createPod("web", ips[0], many);
  ASSERT_TRUE(agent.settle());
  auto c = condition("web");
  EXPECT_EQ(c[1], "InvalidTags") << c[2];
  EXPECT_NE(c[2].find("only 47 of the pods' tags fit"), std::string::npos) << c[2];
  EXPECT_EQ(writes(), 0u);
  // EC2 refuses a CreateTags (a 4xx): TaggingFailed, and no retry until something changes.
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/rules",
                               R"([{"action":"CreateTags","fault":"invalid","count":1}])");
  annotate("web", "Team=Platform");
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(condition("web")[1], "TaggingFailed") << condition("web")[2];
  const auto attempts = calls("CreateTags");
  agent.runUntil([] { return false; }, 4 * 500);  // four of the test agent's retry delays
  EXPECT_EQ(calls("CreateTags"), attempts) << "a refused write is not sent again by itself";
}

}  // namespace
}  // namespace eni::tagger_it
