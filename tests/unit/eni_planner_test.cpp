#include "agent/enimanager/eni_planner.h"

#include <gtest/gtest.h>

#include <limits>

namespace eni {
namespace {

NodeEni nodeEni(const std::string& name, NodeEniSpec spec) {
  NodeEni n;
  n.meta.name = name;
  n.spec = std::move(spec);
  return n;
}

NodeEniSpec spec(std::vector<std::string> subnets, std::int64_t deviceIndex = 1) {
  NodeEniSpec s;
  s.nodeSelector = {{"ng", "multi-eni"}};
  s.subnetIds = std::move(subnets);
  s.deviceIndex = deviceIndex;
  return s;
}

const std::map<std::string, std::string> kLabels{{"ng", "multi-eni"}, {"zone", "a"}};

TEST(EniPlanner, SelectorSemantics) {
  EXPECT_TRUE(selectorMatches({}, kLabels));
  EXPECT_TRUE(selectorMatches({{"ng", "multi-eni"}}, kLabels));
  EXPECT_FALSE(selectorMatches({{"ng", "multi-eni"}, {"zone", "b"}}, kLabels));
  EXPECT_FALSE(selectorMatches({{"missing", "x"}}, kLabels));
}

TEST(EniPlanner, OneEniPerSubnetAtBasePlusI) {
  auto d = desiredEnis("n1", kLabels, "i-1",
                       {nodeEni("multi", spec({"subnet-a", "subnet-b", "subnet-c"}, 2))}, {}, {});
  ASSERT_TRUE(d.problems.empty());
  ASSERT_EQ(d.enis.size(), 3u);
  EXPECT_EQ(d.enis[0].subnetId, "subnet-a");
  EXPECT_EQ(d.enis[0].deviceIndex, 2);
  EXPECT_EQ(d.enis[2].deviceIndex, 4);
  EXPECT_NE(d.enis[0].clientToken, d.enis[1].clientToken);
  EXPECT_EQ(d.enis[0].clientToken, clientTokenFor("multi", "n1", "subnet-a", 2))
      << "stable across passes";
  EXPECT_EQ(d.enis[0].clientToken.size(), 32u);
  const auto& tags = d.enis[1].tags;
  auto has = [&](const std::string& k, const std::string& v) {
    return std::find(tags.begin(), tags.end(), Tag{k, v}) != tags.end();
  };
  EXPECT_TRUE(has("NodeENI", "multi"));
  EXPECT_TRUE(has("Node", "n1"));
  EXPECT_TRUE(has("SubnetID", "subnet-b"));
  EXPECT_TRUE(has(kNoManageTag, "true"));
  EXPECT_TRUE(has(kManagedByTag, "eni-agent"));
  EXPECT_TRUE(has(kInstanceIdTag, "i-1"));
  EXPECT_TRUE(has("Name", "nodeeni-multi-n1-subnet-b"));
}

TEST(EniPlanner, NonMatchingAndDeletingNodeEnisWantNothing) {
  NodeEniSpec other = spec({"subnet-a"});
  other.nodeSelector = {{"ng", "other"}};
  NodeEni deleting = nodeEni("gone", spec({"subnet-b"}));
  deleting.meta.deleting = true;
  auto d = desiredEnis("n1", kLabels, "i-1", {nodeEni("other", other), deleting}, {}, {});
  EXPECT_TRUE(d.enis.empty());
  EXPECT_TRUE(d.problems.empty());
}

TEST(EniPlanner, NamesResolveThroughTheGivenMaps) {
  NodeEniSpec s;
  s.subnetName = "private-a";
  s.subnetNames = {"private-b"};
  s.securityGroupNames = {"multus"};
  auto d =
      desiredEnis("n1", {}, "i-1", {nodeEni("named", s)},
                  {{"private-a", "subnet-1"}, {"private-b", "subnet-2"}}, {{"multus", "sg-9"}});
  ASSERT_EQ(d.enis.size(), 2u);
  EXPECT_EQ(d.enis[0].subnetId, "subnet-1");
  EXPECT_EQ(d.enis[1].subnetId, "subnet-2");
  EXPECT_EQ(d.enis[0].securityGroupIds, std::vector<std::string>{"sg-9"});
}

struct Bad {
  NodeEniSpec spec;
  std::string mustMention;
};

TEST(EniPlanner, InvalidNodeEnisAreProblemsAndGetNothing) {
  NodeEniSpec noSubnet;
  NodeEniSpec unknownName;
  unknownName.subnetName = "nope";
  NodeEniSpec index0 = spec({"subnet-a"}, 0);
  NodeEniSpec bigMtu = spec({"subnet-a"});
  bigMtu.mtu = 9002;
  NodeEniSpec smallMtu = spec({"subnet-a"});
  smallMtu.mtu = 67;
  NodeEniSpec badGroup = spec({"subnet-a"});
  badGroup.securityGroupNames = {"elsewhere"};
  for (const Bad& b :
       {Bad{noSubnet, "no subnet"}, Bad{unknownName, "Name=nope"}, Bad{index0, "below 1"},
        Bad{bigMtu, "outside 68-9001"}, Bad{smallMtu, "outside 68-9001"},
        Bad{badGroup, "no security group named elsewhere"}}) {
    auto d = desiredEnis("n1", kLabels, "i-1", {nodeEni("bad", b.spec)}, {}, {});
    EXPECT_TRUE(d.enis.empty()) << b.mustMention;
    ASSERT_EQ(d.problems.size(), 1u) << b.mustMention;
    EXPECT_NE(d.problems[0].message.find(b.mustMention), std::string::npos)
        << d.problems[0].message;
  }
}

// The field report: deviceIndex 9223372036854775807 with two subnets overflowed base + 1 and the
// agent sent DeviceIndex=-9223372036854775808. Every index must stay within kMaxDeviceIndex.
TEST(EniPlanner, DeviceIndexesAndGroupsStayWithinEc2sBounds) {
  NodeEniSpec huge = spec({"subnet-a", "subnet-b"}, std::numeric_limits<std::int64_t>::max());
  NodeEniSpec pastTheTop = spec({"subnet-a", "subnet-b"}, kMaxDeviceIndex);
  NodeEniSpec namedPastTheTop = spec({"subnet-a"}, kMaxDeviceIndex);
  namedPastTheTop.subnetNames = {"private-b"};
  NodeEniSpec manyGroups = spec({"subnet-a"});
  for (int i = 0; i < 16; ++i) manyGroups.securityGroupIds.push_back("sg-" + std::to_string(i));
  manyGroups.securityGroupNames = {"multus"};
  for (const Bad& b : {Bad{huge, "deviceIndex 9223372036854775807 is above 127"},
                       Bad{pastTheTop,
                           "deviceIndex 127 with 2 subnets needs device indexes up to "
                           "128, above 127; lower deviceIndex or list fewer subnets"},
                       Bad{namedPastTheTop, "with 2 subnets needs device indexes up to 128"},
                       Bad{manyGroups, "17 security groups; EC2 allows at most 16 per ENI"}}) {
    auto d = desiredEnis("n1", kLabels, "i-1", {nodeEni("bad", b.spec)},
                         {{"private-b", "subnet-b"}}, {{"multus", "sg-m"}});
    EXPECT_TRUE(d.enis.empty()) << b.mustMention;
    ASSERT_EQ(d.problems.size(), 1u) << b.mustMention;
    EXPECT_NE(d.problems[0].message.find(b.mustMention), std::string::npos)
        << d.problems[0].message;
  }
  // The edges are fine: the last two indexes, and exactly 16 groups.
  manyGroups.securityGroupNames.clear();
  auto d = desiredEnis("n1", kLabels, "i-1",
                       {nodeEni("top", spec({"subnet-a", "subnet-b"}, kMaxDeviceIndex - 1)),
                        nodeEni("groups", manyGroups)},
                       {}, {});
  EXPECT_TRUE(d.problems.empty()) << d.problems[0].message;
  ASSERT_EQ(d.enis.size(), 3u);
  EXPECT_EQ(d.enis[2].deviceIndex, kMaxDeviceIndex);
  EXPECT_EQ(d.enis[0].securityGroupIds.size(), 16u);
}

TEST(EniPlanner, DeviceIndexesMovePastUsedOnes) {
  EXPECT_EQ(freeDeviceIndex(1, {0}), 1);
  EXPECT_EQ(freeDeviceIndex(1, {0, 1, 2, 4}), 3);
  EXPECT_EQ(freeDeviceIndex(5, {0, 1, 2}), 5);
}

TEST(EniPlanner, OwnershipIsReadFromTags) {
  NetworkInterface ours;
  ours.tags = {
      {kManagedByTag, "eni-agent"}, {kInstanceIdTag, "i-1"}, {"NodeENI", "x"}, {"Node", "n1"}};
  EXPECT_TRUE(ownedBy(ours, "i-1"));
  EXPECT_FALSE(ownedBy(ours, "i-2")) << "another instance's ENI is not ours";
  EXPECT_FALSE(adoptable(ours, "n1"));
  NetworkInterface legacy;
  legacy.tags = {{"NodeENI", "x"}, {"Node", "n1"}};
  EXPECT_FALSE(ownedBy(legacy, "i-1")) << "never detached or deleted before adoption";
  EXPECT_TRUE(adoptable(legacy, "n1"));
  EXPECT_FALSE(adoptable(legacy, "n2"));
  NetworkInterface stranger;
  stranger.tags = {{"Team", "x"}};
  EXPECT_FALSE(ownedBy(stranger, "i-1"));
  EXPECT_FALSE(adoptable(stranger, "n1"));
}

}  // namespace
}  // namespace eni
