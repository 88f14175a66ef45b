#include "agent/enimanager/eni_planner.h"

#include <gtest/gtest.h>

#include <functional>
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

// aws-multi-eni-controller's enableDPDK on an agent without DPDK (--dpdk-sysfs-root empty): such a
// NodeENI gets no ENI and a problem that says so, with its own reason; one without it is served.
TEST(EniPlanner, ADpdkNodeEniIsAProblemThatSaysDpdkIsNotSupported) {
  NodeEniSpec dpdk = spec({"subnet-a"});
  dpdk.enableDpdk = true;
  dpdk.dpdkDriver = "igb_uio";
  NodeEniSpec plain = spec({"subnet-b"});
  plain.dpdkResourceName = "intel.com/ignored";  // without enableDPDK: nothing to bind
  auto d =
      desiredEnis("n1", kLabels, "i-1", {nodeEni("dpdk", dpdk), nodeEni("plain", plain)}, {}, {});
  ASSERT_EQ(d.enis.size(), 1u);
  EXPECT_EQ(d.enis[0].nodeEni, "plain");
  ASSERT_EQ(d.problems.size(), 1u);
  EXPECT_EQ(d.problems[0].nodeEni, "dpdk");
  EXPECT_EQ(d.problems[0].reason, kDpdkNotSupportedReason);
  EXPECT_NE(d.problems[0].message.find("without DPDK support"), std::string::npos)
      << d.problems[0].message;
  EXPECT_NE(d.problems[0].message.find("igb_uio"), std::string::npos) << d.problems[0].message;
}

// With DPDK, such a NodeENI wants its ENIs like any other (their devices are bound once attached);
// DPDK fields of the wrong form are a problem that names the field, and nothing is created.
TEST(EniPlanner, WithDpdkTheNodeEniIsServedAndBadDpdkFieldsAreProblems) {
  NodeEniSpec good = spec({"subnet-a"});
  good.enableDpdk = true;
  good.dpdkResourceName = "intel.com/intel_sriov_dpdk";
  auto d = desiredEnis("n1", kLabels, "i-1", {nodeEni("dpdk", good)}, {}, {}, true);
  ASSERT_EQ(d.enis.size(), 1u);
  EXPECT_TRUE(d.problems.empty());
  const std::vector<std::pair<std::string, std::function<void(NodeEniSpec&)>>> bad = {
      {"dpdkDriver", [](NodeEniSpec& s) { s.dpdkDriver = "../vfio"; }},
      {"dpdkDriver", [](NodeEniSpec& s) { s.dpdkDriver = std::string(33, 'a'); }},
      {"dpdkPCIAddress", [](NodeEniSpec& s) { s.dpdkPciAddress = "0000:00:06.0/../.."; }},
      {"dpdkResourceName", [](NodeEniSpec& s) { s.dpdkResourceName = "a/b/c"; }},
      {"dpdkResourceName", [](NodeEniSpec& s) { s.dpdkResourceName = std::string(128, 'a'); }},
  };
  for (const auto& [field, breakIt] : bad) {
    NodeEniSpec s = good;
    breakIt(s);
    auto p = desiredEnis("n1", kLabels, "i-1", {nodeEni("dpdk", s)}, {}, {}, true);
    EXPECT_TRUE(p.enis.empty()) << field;
    ASSERT_EQ(p.problems.size(), 1u) << field;
    EXPECT_EQ(p.problems[0].reason, kNodeEniInvalidReason);
    EXPECT_NE(p.problems[0].message.find(field), std::string::npos) << p.problems[0].message;
  }
}

// aws-multi-eni-controller's DEFAULT_DELETE_ON_TERMINATION overrode the spec; here the spec wins
// and a disagreement is said.
TEST(EniPlanner, DefaultDeleteOnTerminationNeverOverridesTheSpecButADisagreementIsSaid) {
  NodeEniSpec keep = spec({"subnet-a"});
  keep.deleteOnTermination = true;
  const NodeEni n = nodeEni("x", keep);
  EXPECT_EQ(deleteOnTerminationNote(n, std::nullopt), "");
  EXPECT_EQ(deleteOnTerminationNote(n, true), "");
  const std::string note = deleteOnTerminationNote(n, false);
  EXPECT_NE(note.find("DEFAULT_DELETE_ON_TERMINATION=false"), std::string::npos) << note;
  EXPECT_NE(note.find("NodeENI x keeps its spec.deleteOnTermination=true"), std::string::npos)
      << note;
  auto d = desiredEnis("n1", kLabels, "i-1", {n}, {}, {});
  ASSERT_EQ(d.enis.size(), 1u);
  EXPECT_TRUE(d.enis[0].deleteOnTermination) << "the spec's value is what is set";
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
  legacy.tags = {{"NodeENI", "x"}, {"Node", "n1"}, {kLegacyManagedByTag, kLegacyManagedByValue}};
  EXPECT_FALSE(ownedBy(legacy, "i-1")) << "never detached or deleted before adoption";
  EXPECT_TRUE(adoptable(legacy, "n1"));
  EXPECT_FALSE(adoptable(legacy, "n2"));
  NetworkInterface stranger;
  stranger.tags = {{"Team", "x"}};
  EXPECT_FALSE(ownedBy(stranger, "i-1"));
  EXPECT_FALSE(adoptable(stranger, "n1"));
}

// The ENIs it creates for a NodeENI carry aws-multi-eni-controller's creation tag, so that filters
// on it keep working; host-mode ENIs do not. The tag decides nothing: an ENI of eni-agent's is
// never adoptable, and one that carries the tag but not eni-agent's own is neither owned nor
// releasable, even when a record names it.
TEST(EniPlanner, CreatedEnisCarryTheOldToolsTagWhichProvesNoOwnership) {
  auto d = desiredEnis("n1", kLabels, "i-1", {nodeEni("x", spec({"subnet-a"}))}, {}, {});
  ASSERT_EQ(d.enis.size(), 1u);
  NetworkInterface created;
  created.id = "eni-1";
  created.tags = d.enis[0].tags;
  EXPECT_EQ(tagValue(created, kLegacyManagedByTag), kLegacyManagedByValue);
  EXPECT_EQ(tagValue(created, kManagedByTag), "eni-agent");
  EXPECT_EQ(tagValue(created, kInstanceIdTag), "i-1");
  EXPECT_EQ(tagValue(created, "NodeENI"), "x");
  EXPECT_TRUE(ownedBy(created, "i-1"));
  EXPECT_FALSE(ownedBy(created, "i-2"));
  EXPECT_FALSE(adoptable(created, "n1")) << "eni-agent's own ENI is never adopted";

  NetworkInterface host;
  host.tags = ownershipTags("host-1", "i-1", "subnet-a", "i-1");
  EXPECT_EQ(tagValue(host, kLegacyManagedByTag), "");

  // The old tool's tag with NodeENI, Node and even eni-agent's instance tag, but not
  // managed-by=eni-agent: not owned, and a record naming it does not make it releasable.
  NetworkInterface legacyOnly;
  legacyOnly.id = "eni-2";
  legacyOnly.tags = {{"NodeENI", "x"},
                     {"Node", "n1"},
                     {kInstanceIdTag, "i-1"},
                     {kLegacyManagedByTag, kLegacyManagedByValue}};
  EXPECT_FALSE(ownedBy(legacyOnly, "i-1"));
  RecordedAttachments records;
  records.instanceId = "i-1";
  AttachmentRecord r;
  r.nodeEni = "x";
  r.eniId = "eni-2";
  records.attachments.push_back(r);
  EXPECT_FALSE(releasable(legacyOnly, records, "i-1", {"x"}).release);
}

// aws-multi-eni-controller sets kubernetes.io/cluster/managed-by=nodeeni-controller at creation;
// NodeENI and Node tags alone are anyone's to write.
TEST(EniPlanner, AdoptionNeedsTheOldToolsCreationTagAndNoMarkOfSomeoneElse) {
  NetworkInterface legacy;
  legacy.tags = {{"NodeENI", "x"}, {"Node", "n1"}, {kLegacyManagedByTag, kLegacyManagedByValue}};
  ASSERT_TRUE(adoptable(legacy, "n1"));
  NetworkInterface forged = legacy;
  forged.tags.pop_back();
  EXPECT_FALSE(adoptable(forged, "n1")) << "without the old tool's creation tag";
  forged.tags.push_back({kLegacyManagedByTag, "someone-else"});
  EXPECT_FALSE(adoptable(forged, "n1"));
  NetworkInterface podEni = legacy;
  podEni.privateIpAddresses = {"10.0.0.5", "10.0.0.6"};
  EXPECT_FALSE(adoptable(podEni, "n1")) << "secondary IPs: never adopted";
}

AttachmentRecord recordOf(const std::string& nodeEni, const std::string& eniId) {
  AttachmentRecord r;
  r.nodeEni = nodeEni;
  r.eniId = eniId;
  r.attachmentId = "attach-1";
  r.deviceIndex = 1;
  r.phase = AttachmentPhase::Attached;
  return r;
}

NetworkInterface taggedEni(const std::string& id, const std::string& instance = "i-1") {
  NetworkInterface e;
  e.id = id;
  e.status = "available";
  e.privateIpAddress = "10.0.1.5";
  e.privateIpAddresses = {"10.0.1.5"};
  e.interfaceType = "interface";
  e.description = "eni-agent: NodeENI x";
  e.tags = ownershipTags("x", "n1", "subnet-b", instance);
  return e;
}

EniAttachment attachedTo(const std::string& instance, std::int64_t index) {
  return EniAttachment{"attach-1", instance, index, "attached", true};
}

// Every refusal and every allowance of the release rule, one row each.
TEST(EniPlanner, ReleasableOnlyWhatItsOwnRecordsSayAndNothingTagsCanForge) {
  const RecordedAttachments mine{"i-1", {recordOf("x", "eni-r")}, {}};
  const RecordedAttachments others{"i-other", {recordOf("x", "eni-r")}, {}};
  const RecordedAttachments unnamed{"", {recordOf("x", "eni-r")}, {}};
  const RecordedAttachments none{"i-1", {}, {}};
  struct Row {
    const char* name;
    NetworkInterface eni;
    const RecordedAttachments* records;
    std::set<std::string> creating;
    bool release;
    const char* mustMention;
  };
  auto with = [](std::function<void(NetworkInterface&)> change) {
    NetworkInterface e = taggedEni("eni-r");
    change(e);
    return e;
  };
  const std::vector<Row> rows = {
      {"recorded, available", taggedEni("eni-r"), &mine, {}, true, "recorded"},
      {"recorded, attached here",
       with([](auto& e) { e.attachment = attachedTo("i-1", 1); }),
       &mine,
       {},
       true,
       "recorded"},
      {"recorded, detached elsewhere",
       with([](auto& e) {
         e.attachment = attachedTo("i-other", 1);
         e.attachment->status = "detached";
       }),
       &mine,
       {},
       true,
       "recorded"},
      {"write-ahead, not yet recorded",
       taggedEni("eni-new"),
       &none,
       {"x"},
       true,
       "write-ahead of NodeENI x"},
      {"write-ahead of another NodeENI",
       taggedEni("eni-new"),
       &none,
       {"y"},
       false,
       "not in this agent's records"},
      {"tags alone", taggedEni("eni-forged"), &mine, {}, false, "not in this agent's records"},
      {"another instance's records",
       taggedEni("eni-r"),
       &others,
       {},
       false,
       "the records are instance i-other's, ignored"},
      {"records naming no instance, available",
       taggedEni("eni-r"),
       &unnamed,
       {},
       false,
       "not in this agent's records"},
      {"records naming no instance, attached here",
       with([](auto& e) { e.attachment = attachedTo("i-1", 1); }),
       &unnamed,
       {},
       true,
       "recorded"},
      {"another instance's records, attached here",
       with([](auto& e) { e.attachment = attachedTo("i-1", 1); }),
       &others,
       {},
       false,
       "the records are instance i-other's, ignored"},
      {"no ownership tags",
       with([](auto& e) {
         e.tags = {{"NodeENI", "x"}, {"Node", "n1"}};
       }),
       &mine,
       {"x"},
       false,
       "lacks eni-agent's ownership tags"},
      {"another instance's tags",
       taggedEni("eni-r", "i-other"),
       &mine,
       {},
       false,
       "lacks eni-agent's ownership tags"},
      {"attached to another instance",
       with([](auto& e) { e.attachment = attachedTo("i-other", 1); }),
       &mine,
       {"x"},
       false,
       "attached to another instance (i-other)"},
      {"primary ENI",
       with([](auto& e) { e.attachment = attachedTo("i-1", 0); }),
       &mine,
       {"x"},
       false,
       "device index 0"},
      {"secondary IPs",
       with([](auto& e) {
         e.privateIpAddresses = {"10.0.1.5", "10.0.1.6", "10.0.1.7"};
       }),
       &mine,
       {"x"},
       false,
       "carries 2 secondary private IPs"},
      {"IPv4 prefixes",
       with([](auto& e) { e.ipv4Prefixes = {"10.0.2.16/28"}; }),
       &mine,
       {"x"},
       false,
       "IPv4 prefixes"},
      {"trunk",
       with([](auto& e) { e.interfaceType = "trunk"; }),
       &mine,
       {"x"},
       false,
       "interface type trunk"},
      {"branch",
       with([](auto& e) { e.interfaceType = "branch"; }),
       &mine,
       {"x"},
       false,
       "interface type branch"},
      {"VPC CNI's tag",
       with([](auto& e) {
         e.tags.push_back({kVpcCniInstanceTag, "i-1"});
       }),
       &mine,
       {"x"},
       false,
       "node.k8s.amazonaws.com/instance_id"},
      {"VPC CNI's description",
       with([](auto& e) { e.description = "aws-K8S-i-0123456789abcdef0"; }),
       &mine,
       {"x"},
       false,
       "aws-K8S-"},
  };
  for (const auto& row : rows) {
    const ReleaseDecision d = releasable(row.eni, *row.records, "i-1", row.creating);
    EXPECT_EQ(d.release, row.release) << row.name << ": " << d.reason;
    EXPECT_NE(d.reason.find(row.mustMention), std::string::npos) << row.name << ": " << d.reason;
  }
}

TEST(EniPlanner, NothingIsReleasableWithoutKnowingThisInstance) {
  const RecordedAttachments unnamed{"", {recordOf("x", "eni-r")}, {}};
  NetworkInterface e = taggedEni("eni-r", "");
  EXPECT_FALSE(releasable(e, unnamed, "", {"x"}).release);
}

TEST(EniPlanner, AnEniWithoutMarksIsNeverManagedForNoReason) {
  EXPECT_EQ(whyNeverManaged(taggedEni("eni-1")), "");
  NetworkInterface onePrimaryIp = taggedEni("eni-1");
  onePrimaryIp.attachment = attachedTo("i-1", 3);
  EXPECT_EQ(whyNeverManaged(onePrimaryIp), "") << "the primary address alone is no pod's";
}

}  // namespace
}  // namespace eni
