#include "agent/status/node_status.h"

#include <gtest/gtest.h>
#include <net/if.h>

#include <sstream>

#include "agent/base/json.h"

namespace eni {
namespace {

LinkInfo link(const std::string& name, const std::string& mac, bool up, std::uint32_t mtu) {
  LinkInfo l;
  l.ifindex = 7;
  l.name = name;
  l.mac = mac;
  l.flags = up ? IFF_UP : 0;
  l.mtu = mtu;
  l.operstate = up ? "up" : "down";
  return l;
}

NodeState sampleState() {
  NodeState s;
  s.instanceId = "i-0abc";
  EniRecord pods;
  pods.mac = "02:AA:00:00:00:01";  // upper case as some writers have it
  pods.deviceIndex = 0;
  pods.subnet = "subnet-1";
  pods.tags = {{"Team", "Platform"}, {"CostCenter", "1234"}};
  pods.hash = "adee2f3e0055a9f5";
  pods.pods["web/b"] = PodRecord{"uid-b", "10.0.1.6"};
  pods.pods["default/a"] = PodRecord{"uid-a", "10.0.1.5"};
  s.enis["eni-pods"] = pods;
  s.attachments.push_back({"multus", "eni-nodeeni", "eni-attach-1", 2, "eth2", 9001,
                           AttachmentPhase::Attached, "Configured", "02:aa:00:00:00:02"});
  s.attachments.push_back({"old", "eni-noname", "eni-attach-2", 3, "eth3", 0,
                           AttachmentPhase::Attached, "", ""});  // no MAC recorded
  return s;
}

const EniStatus& row(const NodeStatus& s, const std::string& id) {
  for (const auto& e : s.enis) {
    if (e.eniId == id) return e;
  }
  ADD_FAILURE() << "no row for " << id;
  static EniStatus none;
  return none;
}

TEST(NodeStatus, MergesStateAndLiveLinksByMac) {
  const auto status =
      buildNodeStatus(sampleState(), std::vector<LinkInfo>{
                                         link("eth0", "02:aa:00:00:00:01", true, 1500),
                                         link("ens6", "02:aa:00:00:00:02", false, 1500),
                                         link("eth3", "02:ff:00:00:00:03", true, 1400),
                                     });
  ASSERT_EQ(status.enis.size(), 3u);
  EXPECT_EQ(status.instanceId, "i-0abc");
  // Sorted by device index.
  EXPECT_EQ(status.enis[0].eniId, "eni-pods");
  EXPECT_EQ(status.enis[1].eniId, "eni-nodeeni");
  EXPECT_EQ(status.enis[2].eniId, "eni-noname");

  const auto& pods = row(status, "eni-pods");
  EXPECT_EQ(pods.link, "up");
  EXPECT_EQ(pods.interfaceName, "eth0");
  EXPECT_EQ(pods.mtu, 1500u);
  EXPECT_EQ(pods.mac, "02:aa:00:00:00:01");
  ASSERT_EQ(pods.pods.size(), 2u);
  EXPECT_EQ(pods.pods[0].ns, "default");
  EXPECT_EQ(pods.pods[0].name, "a");
  EXPECT_EQ(pods.pods[0].ip, "10.0.1.5");
  EXPECT_EQ(pods.pods[1].ns, "web");

  // Matched by MAC, not by the recorded name: the live name wins.
  const auto& nodeEni = row(status, "eni-nodeeni");
  EXPECT_EQ(nodeEni.link, "down");
  EXPECT_EQ(nodeEni.interfaceName, "ens6");
  EXPECT_EQ(nodeEni.nodeEni, "multus");
  EXPECT_EQ(nodeEni.wantedMtu, 9001);
  EXPECT_EQ(nodeEni.attachmentState, "attached");
  EXPECT_EQ(nodeEni.recordedLink, "Configured");

  // No MAC recorded: the recorded name is the fallback.
  const auto& noName = row(status, "eni-noname");
  EXPECT_EQ(noName.link, "up");
  EXPECT_EQ(noName.mtu, 1400u);
}

TEST(NodeStatus, MissingWhenNoLinkHasTheMacEvenIfTheNameIsTaken) {
  NodeState s = sampleState();
  const auto status =
      buildNodeStatus(s, std::vector<LinkInfo>{link("eth2", "02:bb:00:00:00:09", true, 1500)});
  const auto& nodeEni = row(status, "eni-nodeeni");
  EXPECT_EQ(nodeEni.link, "missing") << "another link named eth2 is not this ENI's";
  EXPECT_EQ(nodeEni.interfaceName, "eth2") << "the recorded name is still shown";
  EXPECT_EQ(nodeEni.mtu, 0u);
  EXPECT_EQ(row(status, "eni-pods").link, "missing");
  EXPECT_EQ(nodeEni.dpdkDriver, "");
}

// A device bound for DPDK has no kernel interface by design: "dpdk", with its driver and address.
TEST(NodeStatus, ABoundDeviceIsDpdkNotMissing) {
  NodeState s = sampleState();
  for (auto& a : s.attachments) {
    if (a.eniId == "eni-nodeeni") a.dpdk = DeviceBinding{"0000:00:06.0", "vfio-pci", "ena", ""};
  }
  const auto status = buildNodeStatus(s, std::vector<LinkInfo>{});
  const auto& nodeEni = row(status, "eni-nodeeni");
  EXPECT_EQ(nodeEni.link, "dpdk");
  EXPECT_EQ(nodeEni.dpdkDriver, "vfio-pci");
  int found = 0;
  const Json::Value json = statusJson(status);
  for (const auto& e : json["enis"]) {
    if (e["eniId"].asString() != "eni-nodeeni") continue;
    ++found;
    EXPECT_EQ(e["link"].asString(), "dpdk");
    EXPECT_EQ(e["dpdkPCIAddress"].asString(), "0000:00:06.0");
  }
  EXPECT_EQ(found, 1);
}

TEST(NodeStatus, UnknownWhenTheLinksCouldNotBeRead) {
  const auto status = buildNodeStatus(sampleState(), std::nullopt);
  for (const auto& e : status.enis) EXPECT_EQ(e.link, "unknown") << e.eniId;
}

TEST(NodeStatus, AnEniWithPodsAndAnAttachmentIsOneRow) {
  NodeState s = sampleState();
  s.attachments[0].eniId = "eni-pods";
  s.attachments[0].deviceIndex = 0;
  const auto status = buildNodeStatus(s, std::vector<LinkInfo>{});
  ASSERT_EQ(status.enis.size(), 2u);
  const auto& merged = row(status, "eni-pods");
  EXPECT_EQ(merged.nodeEni, "multus");
  EXPECT_EQ(merged.tags.size(), 2u);
  EXPECT_EQ(merged.mac, "02:aa:00:00:00:01") << "the pod record's MAC is kept";
}

TEST(NodeStatus, TableIsAlignedWithOneRowPerEni) {
  NodeStatus status = buildNodeStatus(
      sampleState(), std::vector<LinkInfo>{link("eth0", "02:aa:00:00:00:01", true, 1500),
                                           link("ens6", "02:aa:00:00:00:02", true, 1500)});
  status.mode = "kubernetes";
  status.node = "node-1";
  status.source = "the eni-agent.io/state annotation of node node-1";
  const std::string table = renderStatusTable(status);
  std::istringstream in(table);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u) << table;  // summary, blank, header, 3 rows
  EXPECT_NE(lines[0].find("node node-1, instance i-0abc"), std::string::npos) << lines[0];
  const std::string& header = lines[2];
  const auto linkColumn = header.find("LINK");
  const auto podsColumn = header.find("PODS");
  ASSERT_NE(linkColumn, std::string::npos);
  for (std::size_t i = 3; i < lines.size(); ++i) {
    EXPECT_NE(lines[i].substr(linkColumn, 2), "  ") << "LINK column aligned in: " << lines[i];
    EXPECT_EQ(lines[i][linkColumn - 1], ' ') << lines[i];
  }
  EXPECT_EQ(lines[3].substr(linkColumn, 3), "up ");
  EXPECT_EQ(lines[3].substr(podsColumn), "default/a (10.0.1.5), web/b (10.0.1.6)");
  EXPECT_NE(lines[3].find("CostCenter=1234,Team=Platform"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("1500 (want 9001)"), std::string::npos) << "the MTU gap shows";
  EXPECT_NE(lines[5].find("missing"), std::string::npos) << lines[5];
}

TEST(NodeStatus, TableSaysWhenThereIsNothingYetAndWhyLinksAreUnknown) {
  NodeStatus status = buildNodeStatus(NodeState{}, std::nullopt);
  status.mode = "host";
  status.source = "/var/lib/eni-agent/state.json";
  status.linksError = "no such network namespace /run/netns/x";
  const std::string table = renderStatusTable(status);
  EXPECT_NE(table.find("no ENIs recorded yet"), std::string::npos) << table;
  EXPECT_NE(table.find("links unknown: no such network namespace"), std::string::npos) << table;
  EXPECT_NE(table.find("/var/lib/eni-agent/state.json"), std::string::npos) << table;
  EXPECT_EQ(table.rfind("instance -, host mode, state from /var/lib/eni-agent/state.json\n", 0), 0u)
      << "no node name in host mode: " << table;
}

TEST(NodeStatus, JsonHasTheDocumentedShape) {
  NodeStatus status = buildNodeStatus(
      sampleState(), std::vector<LinkInfo>{link("eth0", "02:aa:00:00:00:01", true, 1500)});
  status.mode = "kubernetes";
  status.node = "node-1";
  auto parsed = parseJson(toJson(statusJson(status)));
  ASSERT_TRUE(parsed);
  const Json::Value& root = *parsed;
  EXPECT_EQ(root["version"].asInt(), 1);
  EXPECT_EQ(root["mode"].asString(), "kubernetes");
  EXPECT_EQ(root["node"].asString(), "node-1");
  EXPECT_EQ(root["instanceId"].asString(), "i-0abc");
  ASSERT_TRUE(root["enis"].isArray());
  ASSERT_EQ(root["enis"].size(), 3u);
  const Json::Value& first = root["enis"][0];
  for (const char* key : {"eniId", "deviceIndex", "mac", "subnet", "interface", "link", "operState",
                          "mtu", "wantedMtu", "nodeEni", "attachmentId", "attachmentState",
                          "recordedLink", "tags", "hash", "pods"}) {
    EXPECT_TRUE(first.isMember(key)) << key;
  }
  EXPECT_EQ(first["eniId"].asString(), "eni-pods");
  EXPECT_EQ(first["deviceIndex"].asInt(), 0);
  EXPECT_EQ(first["link"].asString(), "up");
  EXPECT_EQ(first["mtu"].asInt(), 1500);
  EXPECT_TRUE(first["wantedMtu"].isNull());
  EXPECT_EQ(first["tags"]["Team"].asString(), "Platform");
  EXPECT_EQ(first["pods"][0]["namespace"].asString(), "default");
  EXPECT_EQ(first["pods"][0]["name"].asString(), "a");
  EXPECT_EQ(first["pods"][0]["uid"].asString(), "uid-a");
  EXPECT_EQ(first["pods"][0]["ip"].asString(), "10.0.1.5");
  EXPECT_TRUE(root["enis"][1]["mtu"].isNull()) << "a missing link has no MTU";
  EXPECT_EQ(root["enis"][1]["wantedMtu"].asInt(), 9001);
}

TEST(NodeStatus, ReadsTheNodeAnnotationOrSaysWhatIsMissing) {
  auto node = parseJson(R"({"metadata":{"name":"n1","annotations":{}}})");
  ASSERT_TRUE(node);
  auto none = nodeStateOfNode(*node);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::NotFound);
  EXPECT_NE(none.error().message.find("node n1 has no eni-agent.io/state annotation yet"),
            std::string::npos)
      << none.error().message;

  (*node)["metadata"]["annotations"]["eni-agent.io/state"] = "{not json";
  auto bad = nodeStateOfNode(*node);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::Invalid);
  EXPECT_NE(bad.error().message.find("n1"), std::string::npos) << bad.error().message;

  (*node)["metadata"]["annotations"]["eni-agent.io/state"] = *encodeNodeState(sampleState());
  auto good = nodeStateOfNode(*node);
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(*good, sampleState());

  // On a large node, what changed since is beside it: the status shows both, or the state alone
  // when the overlay is stale.
  const std::string text = *encodeNodeState(sampleState());
  NodeState changed = sampleState();
  changed.enis.erase(changed.enis.begin());
  EncodedEniRecords records;
  const std::string overlay =
      encodeNodeStateOverlay(changed, nodeStateBase(text, sampleState()), records);
  (*node)["metadata"]["annotations"]["eni-agent.io/state-pending"] = overlay;
  auto merged = nodeStateOfNode(*node);
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_EQ(*merged, changed);
  (*node)["metadata"]["annotations"]["eni-agent.io/state"] = text + " ";
  auto stale = nodeStateOfNode(*node);
  ASSERT_TRUE(stale) << stale.error().message;
  EXPECT_EQ(*stale, sampleState());
}

}  // namespace
}  // namespace eni
