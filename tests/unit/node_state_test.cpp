#include "agent/state/node_state.h"

#include <gtest/gtest.h>

#include <utility>

#include "agent/base/json.h"

namespace eni {
namespace {

// A record with every field set, tagged `tags`.
EniRecord fullRecord(std::map<std::string, std::string> tags) {
  EniRecord e;
  e.mac = "02:00:00:00:00:01";
  e.deviceIndex = 0;
  e.subnet = "subnet-1";
  e.tags = std::move(tags);
  e.hash = "adee2f3e0055a9f5";
  e.pods["ns/a"] = PodRecord{"uid-a", "10.0.1.5"};
  return e;
}

TEST(NodeState, RoundTrips) {
  NodeState s;
  s.instanceId = "i-0abc";
  s.enis["eni-1"] = fullRecord({{"Team", "Platform"}});
  s.attachments.push_back({"multus", "eni-2", "eni-attach-1", 2, "eth2", 9001,
                           AttachmentPhase::Attached, "Configured", "02:00:00:00:00:02"});
  s.attachments.back().specHash = "0123456789abcdef";
  s.attachments.push_back({"dpdk", "eni-3", "eni-attach-3", 3, "", 0, AttachmentPhase::Attached});
  s.attachments.back().dpdk = DeviceBinding{"0000:00:07.0", "vfio-pci", "ena", "intel.com/dpdk"};
  for (auto phase :
       {AttachmentPhase::Kept, AttachmentPhase::Releasing, AttachmentPhase::Detached}) {
    AttachmentRecord r;
    r.nodeEni = "old";
    r.eniId = "eni-" + std::string(toString(phase));
    r.phase = phase;
    s.attachments.push_back(r);
  }
  s.unownedEnis = {"eni-0", "eni-1"};
  auto text = encodeNodeState(s);
  ASSERT_TRUE(text);
  auto back = decodeNodeState(*text);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);
}

// A record's share of the text is what encodedEniRecordSize says, plus the comma between it and
// a neighbour: the tagger sizes a pass's records this way instead of encoding a copy of the whole.
TEST(NodeState, ARecordTakesWhatEncodedEniRecordSizeSays) {
  NodeState s;
  s.instanceId = "i-0abc";
  EniRecord e = fullRecord({{"Team", "Plat\"form\\"}, {"Note", "caf\xc3\xa9\n"}});
  e.deviceIndex = 3;
  e.pendingHash = "0123456789abcdef";
  e.pendingKeys = {"Team"};
  const auto empty = encodeNodeState(s);
  ASSERT_TRUE(empty);
  s.enis["eni-b"] = e;
  const auto one = encodeNodeState(s);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size() - empty->size(), encodedEniRecordSize("eni-b", e));
  s.enis["eni-a"] = EniRecord{};
  s.enis["eni-c"].tags = {{"k", "v"}};
  const auto three = encodeNodeState(s);
  ASSERT_TRUE(three);
  s.enis.erase("eni-b");
  const auto two = encodeNodeState(s);
  ASSERT_TRUE(two);
  EXPECT_EQ(three->size() - two->size(), encodedEniRecordSize("eni-b", e) + 1);
}

// The store encodes with the records' texts kept: what it writes is what an encoding from
// scratch writes, through records added, changed (by any field) and removed, first and last too.
TEST(NodeState, KeptRecordTextsChangeNothingInTheText) {
  NodeState s;
  s.instanceId = "i-0abc";
  EncodedEniRecords kept;
  auto same = [&] {
    const auto fresh = encodeNodeState(s);
    const auto reused = encodeNodeState(s, &kept);
    ASSERT_TRUE(fresh);
    ASSERT_TRUE(reused);
    EXPECT_EQ(*reused, *fresh);
    EXPECT_EQ(kept.byId.size(), s.enis.size());
  };
  same();
  for (const char* id : {"eni-b", "eni-d", "eni-f"}) s.enis[id] = fullRecord({{"Team", id}});
  same();
  s.enis["eni-a"] = fullRecord({{"Team", "first"}});
  s.enis["eni-e"] = fullRecord({{"Team", "between"}});
  s.enis["eni-g"] = fullRecord({{"Team", "last"}});
  same();
  s.enis["eni-d"].tags["Env"] = "prod";
  s.enis["eni-b"].pods["ns/b"] = PodRecord{"uid-b", "10.0.1.6"};
  s.enis["eni-f"].pendingKeys = {"Team"};
  s.enis["eni-e"].pods["ns/a"].ip = "10.0.1.7";
  same();
  s.enis["eni-a"].hash = "1111111111111111";
  s.enis["eni-g"].mac.clear();
  s.enis.erase("eni-b");
  same();
  s.enis.erase("eni-a");
  s.enis.erase("eni-g");
  same();
  s.enis.clear();
  same();
}

// The annotation is written straight to text, not through a Json::Value tree: it must be
// byte for byte what jsoncpp writes for the same document (what earlier agents wrote, so an
// upgrade does not rewrite an unchanged record), whatever the strings hold.
TEST(NodeState, WritesExactlyWhatJsoncppWrites) {
  const std::vector<std::string> odd = {
      "",         "plain", "quote\"back\\slash",       "ctl\b\f\n\r\t\x01\x1f\x7f",
      "/slash</", "<&>",   "caf\xc3\xa9 \xe2\x80\xa8", "\xff\xfe not utf-8"};
  NodeState s;
  s.instanceId = odd[2];
  for (std::size_t i = 0; i < odd.size(); ++i) {
    EniRecord e;
    e.mac = i % 2 == 0 ? "" : odd[i];
    e.deviceIndex = i % 3 == 0 ? -1 : static_cast<std::int64_t>(i);
    e.subnet = odd[(i + 1) % odd.size()];
    e.tags = {{odd[i], odd[(i + 2) % odd.size()]}, {"Team", "Platform"}};
    e.hash = i % 2 == 0 ? odd[i] : "";
    if (i % 2 == 1) e.pods["ns/" + odd[i]] = PodRecord{odd[i], "10.0.0." + std::to_string(i)};
    e.pendingHash = i % 4 == 1 ? "abc" : "";
    if (i % 4 == 1) e.pendingKeys = {odd[i], "Team"};
    s.enis["eni-" + odd[i]] = e;
  }
  AttachmentRecord a{
      "multus",     odd[3], "eni-attach-1", 2, "eth2", 9001, AttachmentPhase::Releasing,
      "Configured", odd[4]};
  a.specHash = "0123456789abcdef";
  s.attachments.push_back(a);
  a.dpdk = DeviceBinding{"0000:00:07.0", "vfio-pci", "", ""};
  a.link.clear();
  a.specHash.clear();
  s.attachments.push_back(a);
  a.dpdk = DeviceBinding{"0000:00:08.0", "vfio-pci", "ena", odd[5]};
  s.attachments.push_back(a);
  s.unownedEnis = {"eni-0", odd[6]};
  s.creating = {odd[7]};
  for (const NodeState& state : {NodeState{}, s}) {
    auto text = encodeNodeState(state);
    ASSERT_TRUE(text);
    auto parsed = parseJson(*text);
    ASSERT_TRUE(parsed) << parsed.error().message << "\n" << *text;
    EXPECT_EQ(toJson(*parsed), *text);
    auto back = decodeNodeState(*text);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, state);
  }
}

// The lifecycle phase and the link state are two fields; the words of older agents still read:
// kube mode wrote the link's state in place of "attached", host mode "removing" for "releasing".
TEST(NodeState, ReadsTheAttachmentWordsOfOlderAgents) {
  auto state = decodeNodeState(R"({"version":1,"attachments":[)"
                               R"({"eni":"eni-a","state":"Configured"},)"
                               R"({"eni":"eni-b","state":"removing"},)"
                               R"({"eni":"eni-c","state":"releasing","link":"Gone"},)"
                               R"({"eni":"eni-d","state":"attached"},)"
                               R"({"eni":"eni-e"}]})");
  ASSERT_TRUE(state) << state.error().message;
  ASSERT_EQ(state->attachments.size(), 5u);
  const auto& a = state->attachments;
  EXPECT_EQ(a[0].phase, AttachmentPhase::Attached);
  EXPECT_EQ(a[0].link, "Configured");
  EXPECT_EQ(a[1].phase, AttachmentPhase::Releasing);
  EXPECT_EQ(a[1].link, "");
  EXPECT_EQ(a[2].phase, AttachmentPhase::Releasing);
  EXPECT_EQ(a[2].link, "Gone");
  EXPECT_EQ(a[3].phase, AttachmentPhase::Attached);
  EXPECT_EQ(a[4].phase, AttachmentPhase::Attached);
  EXPECT_EQ(a[4].link, "");

  auto text = encodeNodeState(*state);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find(R"("link":"Configured","mtu":0,"nodeEni":"","state":"attached")"),
            std::string::npos)
      << *text;
  EXPECT_EQ(text->find("removing"), std::string::npos) << *text;
}

TEST(NodeState, RejectsWhatItCannotRead) {
  EXPECT_FALSE(decodeNodeState("not json"));
  auto newer = decodeNodeState(R"({"version":2})");
  ASSERT_FALSE(newer);
  EXPECT_NE(newer.error().message.find("version 2"), std::string::npos);
  EXPECT_FALSE(decodeNodeState(R"({"enis":{}})"));
  auto tolerant = decodeNodeState(
      R"({"version":1,"enis":{"eni-1":{"tags":{"a":1,"b":"2"},"pods":5}},"extra":true})");
  ASSERT_TRUE(tolerant);
  EXPECT_EQ(tolerant->enis["eni-1"].tags, (std::map<std::string, std::string>{{"b", "2"}}));
}

TEST(NodeState, StaysUnder64KiB) {
  NodeState s;
  for (int i = 0; i < 110; ++i) {
    EniRecord e;
    e.tags = {{"Team", "Platform"}, {"CostCenter", "1234"}};
    e.hash = "adee2f3e0055a9f5";
    e.pods["namespace-" + std::to_string(i) + "/pod-" + std::to_string(i)] =
        PodRecord{"6a1c2e0e-0000-4000-8000-" + std::to_string(100000000000 + i),
                  "10.0.1." + std::to_string(i)};
    s.enis["eni-0" + std::to_string(1000000000000000 + i)] = e;
  }
  auto text = encodeNodeState(s);
  ASSERT_TRUE(text);
  EXPECT_LT(text->size(), NodeState::kMaxBytes) << "110 pods on their own ENIs fit";
  for (int i = 0; i < 2000; ++i) {
    s.enis["eni-x" + std::to_string(i)] = s.enis.begin()->second;
  }
  auto tooBig = encodeNodeState(s);
  ASSERT_FALSE(tooBig);
  EXPECT_NE(tooBig.error().message.find("64 KiB"), std::string::npos);
}

/// A node of `pods` pods spread over `enis` ENIs, each ENI carrying `tags` tags of 32-character
/// keys and 64-character values, recorded as a pass that writes them all leaves it during its
/// write-ahead (the tags owned before, plus the pending keys): the worst moment for the budget.
/// Pods have realistic names (40 characters with the namespace), UIDs and IPs; ENIs real-looking
/// IDs, MACs and subnets; plus 8 NodeENI attachments.
NodeState nodeOf(int pods, int enis, int tags) {
  NodeState s;
  s.instanceId = "i-0123456789abcdef0";
  for (int e = 0; e < enis; ++e) {
    char id[32];
    std::snprintf(id, sizeof id, "eni-%017x", e + 0x100);
    EniRecord& r = s.enis[id];
    r.mac = "02:1a:2b:3c:4d:" + std::to_string(10 + e % 90);
    r.deviceIndex = 1 + e % 15;
    r.subnet = "subnet-0123456789abcdef0";
    for (int t = 0; t < tags; ++t) {
      std::string key = "example.com/tag-" + std::to_string(t) + "-";
      key += std::string(32 - key.size(), 'k');
      r.tags[key] = std::string(64, 'v');
      r.pendingKeys.push_back(key);
    }
    r.hash = "adee2f3e0055a9f5";
    r.pendingHash = "bdee2f3e0055a9f5";
  }
  for (int p = 0; p < pods; ++p) {
    char id[32];
    std::snprintf(id, sizeof id, "eni-%017x", (p % enis) + 0x100);
    char name[64];
    std::snprintf(name, sizeof name, "team-namespace-%02d/checkout-7d9f8c6b5-%05d", p % 10, p);
    s.enis[id].pods[name] =
        PodRecord{"6a1c2e0e-1b2c-4d3e-8f4a-" + std::to_string(100000000000 + p),
                  "10.0." + std::to_string(100 + p / 250) + "." + std::to_string(p % 250)};
  }
  for (int a = 0; a < 8; ++a) {
    s.attachments.push_back(
        {"storage-" + std::to_string(a), "eni-0aaaaaaaaaaaaaaa" + std::to_string(a),
         "eni-attach-0bbbbbbbbbbbbbbb" + std::to_string(a), 2 + a, "ens" + std::to_string(6 + a),
         9001, AttachmentPhase::Attached, "Configured", "02:aa:bb:cc:dd:0" + std::to_string(a),
         "0123456789abcdef"});
  }
  return s;
}

// The worst cases of one node that fit the 64 KiB budget, as docs/tagging.md ("Limits") states
// them; one step past each does not, and there the pods that do not fit get TaggingFailed and
// nothing is written for them (tag_plan_test, the security tests).
TEST(NodeState, TheDocumentedWorstCasesFit) {
  const auto fits = [](int pods, int enis, int tags) {
    return static_cast<bool>(encodeNodeState(nodeOf(pods, enis, tags)));
  };
  // 110 pods (the kubelet's default maxPods) in secondary-IP mode on 8 ENIs: 40 tags per ENI.
  EXPECT_TRUE(fits(110, 8, 40));
  EXPECT_FALSE(fits(110, 8, 49));
  // 110 pods each on its own ENI (branch ENIs, security groups for pods): 1 tag each.
  EXPECT_TRUE(fits(110, 110, 1));
  EXPECT_FALSE(fits(110, 110, 2));
  // 50 pods each on its own ENI: 5 tags each.
  EXPECT_TRUE(fits(50, 50, 5));
  EXPECT_FALSE(fits(50, 50, 8));
}

// ------------------------------------------------ eni-agent.io/state-pending, the overlay

NodeState overlayBase() {
  NodeState s;
  s.instanceId = "i-0abc";
  for (int i = 1; i <= 5; ++i) {
    auto e = fullRecord({{"Team", "t" + std::to_string(i)}});
    e.pods.clear();
    e.pods["ns/p" + std::to_string(i)] = PodRecord{"uid-" + std::to_string(i), "10.0.1.1"};
    s.enis["eni-" + std::to_string(i)] = e;
  }
  s.attachments.push_back({"multus", "eni-a", "eni-attach-1", 2, "eth2", 9001,
                           AttachmentPhase::Attached, "Configured", "02:00:00:00:00:02"});
  return s;
}

// The overlay carries what changed and nothing else: a pass that changes a few records of a
// hundred writes those, and a reader that applies it over the state gets the state it was for.
TEST(NodeState, AnOverlayCarriesOnlyWhatChangedAndGivesBackTheStateItWasWrittenFor) {
  const NodeState before = overlayBase();
  const std::string text = *encodeNodeState(before);
  const NodeStateBase base = nodeStateBase(text, *decodeNodeState(text));
  EncodedEniRecords records;
  EXPECT_EQ(encodeNodeStateOverlay(before, base, records), "") << "nothing changed";

  NodeState after = before;
  after.enis["eni-2"].tags["Team"] = "changed";
  after.enis.erase("eni-3");
  after.enis["eni-9"] = fullRecord({{"New", "yes"}});
  std::string overlay = encodeNodeStateOverlay(after, base, records);
  EXPECT_NE(overlay.find(R"("eni-2":{)"), std::string::npos) << overlay;
  EXPECT_NE(overlay.find(R"("eni-3":null)"), std::string::npos) << overlay;
  EXPECT_NE(overlay.find(R"("eni-9":{)"), std::string::npos) << overlay;
  EXPECT_EQ(overlay.find("eni-1"), std::string::npos) << "unchanged records stay out: " << overlay;
  EXPECT_EQ(overlay.find("attachments"), std::string::npos) << overlay;
  EXPECT_EQ(overlay.find("instanceId"), std::string::npos) << overlay;
  auto merged = decodeNodeState(text, overlay);
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_EQ(*merged, after);

  // The other fields, whole, when they differ; an emptied list as [].
  after.attachments.clear();
  after.creating = {"storage"};
  after.unownedEnis = {"eni-0"};
  after.instanceId = "i-0def";
  overlay = encodeNodeStateOverlay(after, base, records);
  EXPECT_NE(overlay.find(R"("attachments":[])"), std::string::npos) << overlay;
  merged = decodeNodeState(text, overlay);
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_EQ(*merged, after);
  // It is a JSON merge patch over the state: what a reader's tools can apply.
  EXPECT_TRUE(parseJson(overlay)) << overlay;
}

// Every state a sequence of passes leaves, from one cache of record texts, is given back by its
// overlay over the same base.
TEST(NodeState, OverlaysFromOneRecordCacheFollowEveryChange) {
  const NodeState start = overlayBase();
  const std::string text = *encodeNodeState(start);
  const NodeStateBase base = nodeStateBase(text, start);
  EncodedEniRecords records;
  NodeState state = start;
  for (int step = 0; step < 40; ++step) {
    const std::string id = "eni-" + std::to_string(step * 7 % 9);
    switch (step % 4) {
      case 0:
        state.enis[id] = fullRecord({{"Step", std::to_string(step)}});
        break;
      case 1:
        state.enis.erase(id);
        break;
      case 2:
        state.enis[id].pendingHash = "h" + std::to_string(step);
        break;
      default:
        state = start;  // back to the base: nothing to carry
        break;
    }
    const std::string overlay = encodeNodeStateOverlay(state, base, records);
    if (state == start) {
      EXPECT_EQ(overlay, "") << "step " << step;
      continue;
    }
    NodeState merged = start;
    ASSERT_TRUE(applyNodeStateOverlay(merged, text, overlay)) << "step " << step;
    EXPECT_EQ(merged, state) << "step " << step << ": " << overlay;
  }
}

// The overlay is untrusted input too: one over another state (someone, an older agent after a
// rollback, wrote the state since), a newer agent's, or one that does not parse leaves the state
// as it was and says why; wrong types read as absent.
TEST(NodeState, AnOverlayThatDoesNotApplyLeavesTheStateAsItWas) {
  const NodeState before = overlayBase();
  const std::string text = *encodeNodeState(before);
  const std::string digest = stateDigest(text);
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_NE(digest, stateDigest(text + " "));

  NodeState s = before;
  auto stale = applyNodeStateOverlay(
      s, text, R"({"base":"0000000000000000","enis":{"eni-1":null},"version":1})");
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::NotFound);
  EXPECT_NE(stale.error().message.find("stale"), std::string::npos) << stale.error().message;
  auto newer = applyNodeStateOverlay(
      s, text, R"({"base":")" + digest + R"(","enis":{"eni-1":null},"version":2})");
  ASSERT_FALSE(newer);
  EXPECT_EQ(newer.error().code, ErrorCode::Conflict);
  auto broken = applyNodeStateOverlay(s, text, "{not json");
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, ErrorCode::Invalid);
  EXPECT_EQ(s, before);

  ASSERT_TRUE(applyNodeStateOverlay(
      s, text,
      R"({"attachments":"none","base":")" + digest +
          R"(","enis":{"eni-1":"x","eni-2":null,"eni-3":[1]},"instanceId":7,"version":1})"));
  NodeState expected = before;
  expected.enis.erase("eni-2");
  EXPECT_EQ(s, expected);

  std::string ignored;
  auto read = decodeNodeState(text, R"({"base":"0000000000000000","version":1})", &ignored);
  ASSERT_TRUE(read) << "the state itself still reads";
  EXPECT_EQ(*read, before);
  EXPECT_NE(ignored.find("stale"), std::string::npos) << ignored;
}

}  // namespace
}  // namespace eni
