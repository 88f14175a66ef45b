// The tagger's pass plan, table-driven: every kind of decision of tag_plan.h on a small world
// built by hand (no I/O): write-ahead settlement, verification of each pod's ENI, the subnet
// filter, desires and members, the reads before the writes, the withheld writes and the budget,
// and the record of the writes' outcomes.
#include "agent/tagger/tag_plan.h"

#include <gtest/gtest.h>

#include <array>
#include <random>

namespace eni {
namespace {

const std::string kMine = "eni-mine";

PodJob job(const std::string& name, const std::string& ip, TagSet tags) {
  PodJob j;
  j.key = "ns/" + name;
  j.uid = "uid-" + name;
  j.ns = "ns";
  j.ip = ip;
  j.desired = std::move(tags);
  return j;
}

SeenEni seen(TagSet tags, std::string subnet = "subnet-a", std::vector<std::string> ips = {},
             std::string notOurs = "") {
  SeenEni s;
  s.tags = std::move(tags);
  s.subnet = std::move(subnet);
  s.addresses = std::move(ips);
  s.notOurs = std::move(notOurs);
  s.interfaceType = "interface";
  s.ipv4Count = s.addresses.size();
  return s;
}

ResolvedEni resolved(const std::string& eni, ResolveSource source, std::string subnet = "") {
  ResolvedEni r;
  r.eniId = eni;
  r.subnet = std::move(subnet);
  r.source = source;
  return r;
}

/// Plans at the final stage, after the read.
TagPassOutput planned(const std::vector<PodJob>& pods, const NodeState& base,
                      const TagObservation& obs, const TagPlanOptions& options = {}) {
  TagPassOutput out;
  planTags(pods, base, obs, options, PlanStage::Final, out);
  return out;
}

const EniPlan* planFor(const TagPassOutput& out, const std::string& eni) {
  for (const auto& p : out.plans) {
    if (p.eniId == eni) return &p;
  }
  return nullptr;
}

/// A node state whose ENIs record these members: {ENI, pod key, UID, IP}.
NodeState withMembers(const std::vector<std::array<std::string, 4>>& rows) {
  NodeState s;
  for (const auto& [eni, key, uid, ip] : rows) s.enis[eni].pods[key] = PodRecord{uid, ip};
  return s;
}

// ---------------------------------------------------------------- write-ahead settlement

// The index a pass resolves pods with answers what memberEni answers, also for a record that
// names a pod twice (the annotation is writable by others) or with another UID or IP.
TEST(MemberIndex, AnswersWhatMemberEniAnswers) {
  NodeState s = withMembers({{"eni-a", "ns/web", "uid-old", "10.0.0.5"},
                             {"eni-b", "ns/web", "uid-web", "10.0.0.5"},
                             {"eni-c", "ns/web", "uid-web", "10.0.0.5"},
                             {"eni-c", "ns/db", "uid-db", "10.0.0.6"}});
  s.enis["eni-d"];
  const MemberIndex index(s);
  for (const std::string key : {"ns/web", "ns/db", "ns/none"}) {
    for (const std::string uid : {"uid-old", "uid-web", "uid-db", "uid-x"}) {
      for (const std::string ip : {"10.0.0.5", "10.0.0.6"}) {
        EXPECT_EQ(index.eniOf(key, uid, ip), memberEni(s, key, uid, ip)) << key << uid << ip;
      }
    }
  }
  EXPECT_EQ(index.eniOf("ns/web", "uid-web", "10.0.0.5"), "eni-b");
  EXPECT_EQ(index.eniOf("ns/web", "uid-web", "10.0.0.6"), "");
}

// The view handed to each pass, brought up to date by refresh(), holds what the store holds and
// the index a MemberIndex built from scratch over it would, and knows the state's encoded size:
// records added, changed (pods that join, leave or move), removed, ENIs that list the same pod,
// and the ENI manager's part changing beside them.
TEST(RecordView, RefreshedIsTheStateAndItsIndexAsBuiltFromScratch) {
  std::mt19937 rng(7);  // fixed: the same sequence of states every run
  RecordView view;
  NodeState s;
  s.instanceId = "i-1";
  for (int step = 0; step < 300; ++step) {
    const std::string eni = "eni-" + std::to_string(rng() % 12);
    const std::string pod = "ns/p" + std::to_string(rng() % 8);
    switch (rng() % 5) {
      case 0:
        s.enis.erase(eni);
        break;
      case 1:
        s.enis[eni].pods.erase(pod);
        break;
      case 2:
        s.enis[eni].tags["Team"] = std::to_string(step);
        break;
      default:
        s.enis[eni].pods[pod] = PodRecord{"uid-" + std::to_string(rng() % 3), "10.0.0.1"};
    }
    if (step % 50 == 0) s.unownedEnis = {"eni-primary-" + std::to_string(step)};
    if (step % 70 == 0) {
      AttachmentRecord a;
      a.nodeEni = "storage";
      a.eniId = "eni-att" + std::to_string(step);
      s.attachments.push_back(a);
    }
    if (rng() % 3 != 0) continue;  // several changes between two passes
    view.refresh(s);
    ASSERT_EQ(view.state(), s) << "step " << step;
    ASSERT_TRUE(view.members() == MemberIndex(s)) << "step " << step;
    ASSERT_EQ(view.encodedSize(), encodeNodeState(s).value().size()) << "step " << step;
  }
  EXPECT_EQ(stateWithoutEnis(view.state()).unownedEnis, s.unownedEnis);
  EXPECT_TRUE(stateWithoutEnis(view.state()).enis.empty());
}

// A scoped pass reaches, from the pods marked, the ENIs they are recorded on or resolve to and
// every pod recorded on those, transitively; nothing else. Each pod is resolved once.
TEST(PassScope, ReachesEveryPodThatSharesAnEniWithAMarkedOneAndNoOther) {
  const NodeState s = withMembers({{"eni-a", "ns/a1", "uid-a1", "10.0.0.1"},
                                   {"eni-a", "ns/a2", "uid-a2", "10.0.0.2"},
                                   {"eni-b", "ns/b1", "uid-b1", "10.0.0.3"},
                                   {"eni-c", "ns/c1", "uid-c1", "10.0.0.4"},
                                   // an older a2, listed too
                                   {"eni-c", "ns/a2", "uid-old", "10.0.0.9"},
                                   {"eni-d", "ns/d1", "uid-d1", "10.0.0.5"}});
  const MemberIndex members(s);
  // Where each pod resolves now: a2 moved to eni-b; new resolves to eni-d; gone resolves to none.
  const std::map<std::string, std::string> where = {{"ns/a1", "eni-a"}, {"ns/a2", "eni-b"},
                                                    {"ns/b1", "eni-b"}, {"ns/c1", "eni-c"},
                                                    {"ns/d1", "eni-d"}, {"ns/new", "eni-d"}};
  std::map<std::string, int> asked;
  auto resolve = [&](const std::set<std::string>& keys) {
    std::map<std::string, std::string> out;
    for (const auto& key : keys) {
      ++asked[key];
      if (auto it = where.find(key); it != where.end()) out[key] = it->second;
    }
    return out;
  };
  using Keys = std::set<std::string>;
  // a1: its ENI eni-a and its neighbour a2; a2 is listed on eni-c too and resolves to eni-b, so
  // both come in with their pods.
  auto scope = reachOf({"ns/a1"}, s, members, resolve);
  EXPECT_EQ(scope.enis, (Keys{"eni-a", "eni-b", "eni-c"}));
  EXPECT_EQ(scope.pods, (Keys{"ns/a1", "ns/a2", "ns/b1", "ns/c1"}));
  for (const auto& [key, n] : asked) EXPECT_EQ(n, 1) << key;
  // A new pod joining eni-d brings d1 along, and nothing of the others.
  asked.clear();
  scope = reachOf({"ns/new"}, s, members, resolve);
  EXPECT_EQ(scope.enis, (Keys{"eni-d"}));
  EXPECT_EQ(scope.pods, (Keys{"ns/new", "ns/d1"}));
  EXPECT_EQ(asked, (std::map<std::string, int>{{"ns/new", 1}, {"ns/d1", 1}}));
  // A pod gone (resolves to nothing) still reaches the ENI that records it.
  const std::map<std::string, std::string> none;
  scope = reachOf({"ns/b1"}, s, members, [&](const Keys&) { return none; });
  EXPECT_EQ(scope.enis, (Keys{"eni-b"}));
  EXPECT_EQ(scope.pods, (Keys{"ns/b1"}));
  // An answer for a pod that was not asked about reaches nothing.
  scope = reachOf({"ns/b1"}, s, members, [&](const Keys&) {
    return std::map<std::string, std::string>{{"ns/d1", "eni-d"}};
  });
  EXPECT_EQ(scope.enis, (Keys{"eni-b"}));
}

// Beside a pass in flight, the part of a scope connected to what that pass claimed waits: the
// pods on its ENIs, a pod moving from one of them and every pod of the ENI it moves to, and a pod
// that pass judges; the rest is planned now.
TEST(PassScope, WhatReachesAPassInFlightWaitsAndTheRestGoesOn) {
  const NodeState s = withMembers({{"eni-a", "ns/a1", "uid-a1", "10.0.0.1"},
                                   {"eni-b", "ns/b1", "uid-b1", "10.0.0.3"},
                                   {"eni-b", "ns/b2", "uid-b2", "10.0.0.6"},
                                   {"eni-c", "ns/c1", "uid-c1", "10.0.0.4"},
                                   {"eni-d", "ns/d1", "uid-d1", "10.0.0.5"}});
  const MemberIndex members(s);
  auto resolved = [](std::initializer_list<std::pair<const char*, const char*>> where) {
    std::map<std::string, ResolvedEni> out;
    for (const auto& [key, eni] : where) out[key].eniId = eni;
    return out;
  };
  using Keys = std::set<std::string>;
  // eni-a is busy. b1 moves to it from eni-b, so eni-b and b2 wait with it; new resolves to
  // eni-a; c1 and d1 have nothing to do with it.
  PassScope scope{{"ns/a1", "ns/b1", "ns/b2", "ns/c1", "ns/d1", "ns/new", "ns/lost"},
                  {"eni-a", "eni-b", "eni-c", "eni-d"}};
  const auto eniOf = resolved({{"ns/b1", "eni-a"},
                               {"ns/b2", "eni-b"},
                               {"ns/c1", "eni-c"},
                               {"ns/d1", "eni-d"},
                               {"ns/new", "eni-a"}});
  auto deferred = deferBusy(scope, PassScope{{}, {"eni-a"}}, members, eniOf);
  EXPECT_EQ(deferred, (Keys{"ns/a1", "ns/b1", "ns/b2", "ns/new"}));
  EXPECT_EQ(scope.pods, (Keys{"ns/c1", "ns/d1", "ns/lost"})) << "lost: no ENI, judged now";
  EXPECT_EQ(scope.enis, (Keys{"eni-c", "eni-d"}));
  // A pod the pass in flight judges waits with its ENI and that ENI's pods.
  scope = PassScope{{"ns/c1", "ns/d1"}, {"eni-c", "eni-d"}};
  deferred = deferBusy(scope, PassScope{{"ns/d1"}, {}}, members, eniOf);
  EXPECT_EQ(deferred, (Keys{"ns/d1"}));
  EXPECT_EQ(scope.enis, (Keys{"eni-c"}));
  // Nothing in flight: nothing waits.
  scope = PassScope{{"ns/a1"}, {"eni-a"}};
  EXPECT_TRUE(deferBusy(scope, PassScope{}, members, eniOf).empty());
  EXPECT_EQ(scope.enis, (Keys{"eni-a"}));
}

// With a scope, only its ENIs are planned: a record outside it is neither planned nor its pods
// dropped, though the pods of the pass do not include them.
TEST(TagPlan, AScopedPlanLeavesEveryOtherEniAlone) {
  NodeState base;
  base.enis["eni-a"].pods["ns/a"] = PodRecord{"uid-a", "10.0.0.1"};
  base.enis["eni-a"].tags = {{"Team", "x"}};
  base.enis["eni-b"].pods["ns/b"] = PodRecord{"uid-b", "10.0.0.2"};
  base.enis["eni-b"].tags = {{"Team", "y"}};
  TagObservation obs;
  obs.eniOf["ns/a"] = resolved("eni-a", ResolveSource::Cache);
  obs.fresh["eni-a"] = seen({{"Team", "x"}});
  obs.observed["eni-a"] = {{"Team", "x"}};
  const std::vector<PodJob> pods = {job("a", "10.0.0.1", {{"Team", "z"}})};
  const std::set<std::string> scope = {"eni-a"};
  TagPassOutput out;
  planTags(pods, base, obs, {}, PlanStage::Final, out, &scope);
  ASSERT_EQ(out.plans.size(), 1u);
  EXPECT_EQ(out.plans[0].eniId, "eni-a");
  EXPECT_EQ(out.plans[0].toSet.count("Team"), 1u);
  EXPECT_TRUE(out.droppedPods.empty());
  EXPECT_EQ(out.state.enis.at("eni-b").tags, base.enis.at("eni-b").tags);
  // Without the scope, eni-b's pod (not among the pods) would be dropped and its tags removed.
  planTags(pods, base, obs, {}, PlanStage::Final, out);
  EXPECT_EQ(out.droppedPods, (std::set<std::string>{"ns/b"}));
}

TEST(TagPlan, WriteAheadSettlement) {
  const TagSet wrote{{"Team", "A"}};
  struct Row {
    const char* name;
    bool read;          // the pass's Describe showed the ENI
    bool describedAll;  // the observe-all Describe answered
    std::string hashOnEni;
    bool ownsTeam;  // afterwards the record owns Team
    bool pendingLeft;
    bool retry;
  };
  const std::vector<Row> rows = {
      {"landed", true, true, tagHash(wrote), true, false, false},
      {"did not land", true, true, "", false, false, false},
      {"another hash", true, true, "ffffffffffffffff", false, false, false},
      {"the ENI is gone", false, true, "", false, false, false},
      {"unknown: no Describe answered", false, false, "", false, true, true},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    NodeState state;
    state.enis[kMine].pendingHash = tagHash(wrote);
    state.enis[kMine].pendingKeys = {"Team"};
    TagObservation obs;
    obs.describedAll = row.describedAll;
    if (row.read) {
      TagSet onEni{{"Team", "A"}};
      if (!row.hashOnEni.empty()) onEni[kHashTagKey] = row.hashOnEni;
      obs.fresh[kMine] = seen(onEni);
    }
    bool retry = false;
    settleWriteAheads(state, obs, retry);
    EXPECT_EQ(state.enis[kMine].tags.count("Team") == 1, row.ownsTeam);
    EXPECT_EQ(state.enis[kMine].hasPending(), row.pendingLeft);
    EXPECT_EQ(retry, row.retry);
  }
}

// ---------------------------------------------------------------- verification

TEST(TagPlan, EachPodsEniIsVerifiedBeforeAnythingIsPlannedForIt) {
  struct Row {
    const char* name;
    ResolveSource source;
    enum { NotRead, Ours, OursWithoutTheIp, NotOurs, Gone, ReadFailed } world;
    SyncReason verdict;  // Synced: planned
    const char* says;
    bool retry;
  };
  const std::vector<Row> rows = {
      {"annotation, this node's, holds the IP", ResolveSource::PodAnnotation, Row::Ours,
       SyncReason::Synced, "", false},
      {"annotation, does not hold the IP", ResolveSource::PodAnnotation, Row::OursWithoutTheIp,
       SyncReason::EniLookupFailed, "does not hold 10.0.0.9", false},
      {"annotation, another node's", ResolveSource::PodAnnotation, Row::NotOurs,
       SyncReason::EniLookupFailed, "attached to instance i-other", false},
      {"annotation, no such ENI", ResolveSource::PodAnnotation, Row::Gone,
       SyncReason::EniLookupFailed, "EC2 has no such ENI", true},
      {"annotation, the read failed", ResolveSource::PodAnnotation, Row::ReadFailed,
       SyncReason::EniLookupFailed, "cannot read eni-mine", true},
      {"eni-tagger-cache hint, this node's, holds the IP", ResolveSource::EniTaggerCache, Row::Ours,
       SyncReason::Synced, "", false},
      {"eni-tagger-cache hint, does not hold the IP: spent, looked up again",
       ResolveSource::EniTaggerCache, Row::OursWithoutTheIp, SyncReason::EniLookupFailed,
       "eni-tagger-cache names eni-mine for 10.0.0.9, but that ENI does not hold", true},
      {"IMDS, read, this node's", ResolveSource::Imds, Row::Ours, SyncReason::Synced, "", false},
      {"IMDS, read, no longer this node's", ResolveSource::Imds, Row::NotOurs,
       SyncReason::EniLookupFailed, "attached to instance i-other", false},
      {"IMDS, IP not on the ENI is fine (IMDS placed it)", ResolveSource::Imds,
       Row::OursWithoutTheIp, SyncReason::Synced, "", false},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    TagObservation obs;
    obs.eniOf["ns/web"] = resolved(kMine, row.source);
    const std::string notOurs =
        row.world == Row::NotOurs ? "it is attached to instance i-other" : "";
    if (row.world == Row::Ours || row.world == Row::NotOurs)
      obs.fresh[kMine] = seen({}, "subnet-a", {"10.0.0.9"}, notOurs);
    if (row.world == Row::OursWithoutTheIp) obs.fresh[kMine] = seen({}, "subnet-a", {"10.0.0.1"});
    if (row.world == Row::Gone) obs.gone.insert(kMine);
    if (row.world == Row::ReadFailed) obs.readError = "throttled";
    obs.observed[kMine] = obs.fresh.count(kMine) ? obs.fresh[kMine].tags : TagSet{};
    auto out = planned({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs);
    ASSERT_EQ(out.verdicts.count("ns/web"), row.verdict == SyncReason::Synced ? 0u : 1u);
    if (row.verdict == SyncReason::Synced) {
      const EniPlan* p = planFor(out, kMine);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(p->verdicts.at(0).reason, SyncReason::Synced);
      EXPECT_TRUE(p->writes());
    } else {
      EXPECT_EQ(out.verdicts.at("ns/web").reason, row.verdict);
      EXPECT_NE(out.verdicts.at("ns/web").message.find(row.says), std::string::npos)
          << out.verdicts.at("ns/web").message;
      EXPECT_EQ(planFor(out, kMine), nullptr) << "nothing planned for it";
    }
    EXPECT_EQ(out.retry, row.retry);
  }
}

TEST(TagPlan, RecordsOfEnisThatAreNotThisNodesAreDropped) {
  NodeState base;
  base.enis[kMine].tags = {{"Owner", "x"}};
  base.enis[kMine].hash = tagHash({{"Owner", "x"}});
  base.enis[kMine].pods["gone/pod"] = PodRecord{"u", "10.0.0.2"};
  TagObservation obs;
  obs.fresh[kMine] = seen({{"Owner", "x"}}, "subnet-a", {}, "it is attached to instance i-other");
  auto out = planned({}, base, obs);
  EXPECT_EQ(out.state.enis.count(kMine), 0u);
  EXPECT_EQ(planFor(out, kMine), nullptr) << "no removal on its account";
  ASSERT_EQ(out.notes.size(), 1u);
  EXPECT_EQ(out.notes[0][1], kMine);
}

// ---------------------------------------------------------------- the subnet filter

TEST(TagPlan, SubnetFilter) {
  struct Row {
    const char* name;
    std::vector<std::string> subnetIds;
    std::string subnet;  // of the ENI, as its source said ("" unknown)
    bool read;           // a Describe showed it
    bool planned;
    bool lookupFailed;
  };
  const std::vector<Row> rows = {
      {"no filter", {}, "subnet-a", false, true, false},
      {"inside", {"subnet-a"}, "subnet-a", false, true, false},
      {"outside: not ours, no verdict", {"subnet-a"}, "subnet-b", false, false, false},
      {"unknown, read shows it inside", {"subnet-a"}, "", true, true, false},
      {"unknown and unread", {"subnet-a"}, "", false, false, false},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    TagObservation obs;
    obs.eniOf["ns/web"] = resolved(kMine, ResolveSource::Imds, row.subnet);
    obs.eniOf["ns/web"].ipv4Count = 1;  // IMDS lists one address: not shared
    obs.eniOf["ns/web"].ipv4Prefixes = 0;
    if (row.read) obs.fresh[kMine] = seen({}, "subnet-a", {"10.0.0.9"});
    TagPassOutput out;
    planTags({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs,
             TagPlanOptions{row.subnetIds}, PlanStage::BeforeRead, out);
    EXPECT_EQ(planFor(out, kMine) != nullptr, row.planned);
    EXPECT_EQ(out.verdicts.count("ns/web") == 1, row.lookupFailed);
  }
  // After the read, a pod whose ENI is outside is told which subnet, not left in silence.
  {
    TagObservation obs;
    obs.eniOf["ns/web"] = resolved(kMine, ResolveSource::Imds, "subnet-b");
    obs.fresh[kMine] = seen({}, "subnet-b", {"10.0.0.9"});
    auto out = planned({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs,
                       TagPlanOptions{{"subnet-a", "subnet-c"}});
    ASSERT_EQ(out.verdicts.count("ns/web"), 1u);
    EXPECT_EQ(out.verdicts.at("ns/web").reason, SyncReason::EniValidationFailed);
    EXPECT_NE(out.verdicts.at("ns/web").message.find("subnet subnet-b"), std::string::npos)
        << out.verdicts.at("ns/web").message;
    EXPECT_NE(out.verdicts.at("ns/web").message.find("subnet-a,subnet-c"), std::string::npos);
    EXPECT_EQ(planFor(out, kMine), nullptr) << "nothing written";
    EXPECT_FALSE(out.retry) << "it does not come right by itself";
  }
  // Read, and still no subnet: the pod is told, and retried.
  TagObservation obs;
  obs.eniOf["ns/web"] = resolved(kMine, ResolveSource::PodAnnotation);
  obs.fresh[kMine] = seen({}, "", {"10.0.0.9"});
  auto out = planned({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs,
                     TagPlanOptions{{"subnet-a"}});
  ASSERT_EQ(out.verdicts.count("ns/web"), 1u);
  EXPECT_NE(out.verdicts.at("ns/web").message.find("cannot tell the subnet"), std::string::npos);
}

// ---------------------------------------------------------------- desires and members

TEST(TagPlan, AnInvalidAnnotationKeepsWhatWasAppliedForAMemberAndAPodGoneIsDropped) {
  const TagSet applied{{"Team", "A"}};
  NodeState base;
  base.enis[kMine].tags = applied;
  base.enis[kMine].hash = tagHash(applied);
  base.enis[kMine].pods["ns/web"] = PodRecord{"uid-web", "10.0.0.9"};
  base.enis[kMine].pods["ns/gone"] = PodRecord{"uid-gone", "10.0.0.8"};
  PodJob web = job("web", "10.0.0.9", {});
  web.desired = fail(ErrorCode::Invalid, "malformed JSON");
  web.lastApplied = applied;
  web.lastAppliedHash = tagHash(applied);
  TagObservation obs;
  obs.fresh[kMine] = seen({{"Team", "A"}, {kHashTagKey, tagHash(applied)}});
  obs.observed[kMine] = obs.fresh[kMine].tags;
  auto out = planned({web}, base, obs);
  EXPECT_EQ(out.verdicts.at("ns/web").reason, SyncReason::InvalidTags);
  const EniPlan* p = planFor(out, kMine);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->writes()) << "what was applied stays: the gone pod wanted the same";
  EXPECT_EQ(out.droppedPods, std::set<std::string>{"ns/gone"});
}

// ---------------------------------------------------------------- reads before writes

TEST(TagPlan, TheEnisToReadBeforeTheFinalPlan) {
  struct Row {
    const char* name;
    ResolveSource source;
    bool read;
    std::vector<std::string> subnetIds;
    bool toRead;
  };
  const std::vector<Row> rows = {
      {"a writer not read", ResolveSource::Imds, false, {}, true},
      {"a writer read already (cold start)", ResolveSource::Imds, true, {}, false},
      {"named by the annotation", ResolveSource::PodAnnotation, false, {}, true},
      {"named by eni-tagger-cache", ResolveSource::EniTaggerCache, false, {}, true},
      {"subnet needed", ResolveSource::Cache, false, {"subnet-a"}, true},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    TagObservation obs;
    obs.eniOf["ns/web"] = resolved(kMine, row.source);
    if (row.read) obs.fresh[kMine] = seen({}, "subnet-a", {"10.0.0.9"});
    TagPassOutput out;
    const TagPlanOptions options{row.subnetIds};
    planTags({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs, options,
             PlanStage::BeforeRead, out);
    EXPECT_EQ(
        enisToRead({job("web", "10.0.0.9", {{"Team", "A"}})}, out, obs, options).count(kMine) == 1,
        row.toRead);
  }
}

// A pod joining an ENI that already carries its tags (adoption) writes nothing: Refuse still reads
// the ENI once to judge it, Merge does not; a member is not read again (it was judged when it
// joined; the drift check reads it).
TEST(TagPlan, RefuseReadsTheEniAPodJoinsAndNoOther) {
  const TagSet tags{{"Team", "A"}};
  struct Row {
    const char* name;
    SharedEniPolicy policy;
    bool member;
    bool imdsListedItsAddresses;
    bool toRead;
  };
  const std::vector<Row> rows = {
      {"refuse, joining", SharedEniPolicy::Refuse, false, false, true},
      {"refuse, joining, IMDS listed its one address", SharedEniPolicy::Refuse, false, true, false},
      {"refuse, a member", SharedEniPolicy::Refuse, true, false, false},
      {"merge, joining", SharedEniPolicy::Merge, false, false, false},
      {"any, joining", SharedEniPolicy::Any, false, false, false},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    NodeState base;
    base.enis[kMine].tags = tags;
    base.enis[kMine].hash = tagHash(tags);
    if (row.member) base.enis[kMine].pods["ns/web"] = PodRecord{"uid-web", "10.0.0.9"};
    TagObservation obs;
    obs.eniOf["ns/web"] = resolved(kMine, ResolveSource::Imds, "subnet-a");
    if (row.imdsListedItsAddresses) {
      obs.eniOf["ns/web"].ipv4Count = 1;
      obs.eniOf["ns/web"].ipv4Prefixes = 0;
    }
    obs.observed[kMine] = {{"Team", "A"}, {kHashTagKey, tagHash(tags)}};
    TagPlanOptions options;
    options.sharedEnis = row.policy;
    const std::vector<PodJob> pods{job("web", "10.0.0.9", tags)};
    TagPassOutput out;
    planTags(pods, base, obs, options, PlanStage::BeforeRead, out);
    EXPECT_EQ(enisToRead(pods, out, obs, options).count(kMine) == 1, row.toRead);
  }
}

// --shared-eni-tagging: k8s-eni-tagger's refusals (more than one private IPv4, a prefix, a trunk,
// the primary ENI) under refuse; only the primary ENI under merge; nothing under any.
TEST(TagPlan, SharedEniTagging) {
  enum World {
    Single,
    TwoIps,
    Prefix,
    Trunk,
    Primary,
    PrimaryByImdsUnread,
    TwoIpsByImdsUnread,
    UnreadJoining
  };
  struct Row {
    const char* name;
    SharedEniPolicy policy;
    World world;
    SyncReason verdict;  // Synced: planned, with a write
    const char* says;
  };
  const auto R = SharedEniPolicy::Refuse;
  const auto M = SharedEniPolicy::Merge;
  const auto A = SharedEniPolicy::Any;
  const auto ok = SyncReason::Synced;
  const auto refused = SyncReason::EniValidationFailed;
  const std::vector<Row> rows = {
      {"refuse, one pod's own ENI", R, Single, ok, ""},
      {"refuse, two private IPv4s", R, TwoIps, refused, "holds 2 private IPv4 addresses"},
      {"refuse, a delegated prefix", R, Prefix, refused, "delegated IPv4 prefix"},
      {"refuse, a trunk", R, Trunk, refused, "is a trunk ENI"},
      {"refuse, the primary ENI", R, Primary, refused, "primary ENI (device index 0)"},
      {"refuse, the primary ENI as IMDS tells", R, PrimaryByImdsUnread, refused, "device index 0"},
      {"refuse, two private IPv4s as IMDS lists them", R, TwoIpsByImdsUnread, refused,
       "holds 2 private IPv4 addresses"},
      {"refuse, unread and joining", R, UnreadJoining, SyncReason::EniLookupFailed,
       "whether it is shared"},
      {"merge, two private IPv4s", M, TwoIps, ok, ""},
      {"merge, a trunk", M, Trunk, ok, ""},
      {"merge, the primary ENI", M, Primary, refused, "--shared-eni-tagging=any tags it"},
      {"merge, the primary ENI as IMDS tells", M, PrimaryByImdsUnread, refused, "device index 0"},
      {"any, two private IPv4s", A, TwoIps, ok, ""},
      {"any, the primary ENI", A, Primary, ok, ""},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    TagObservation obs;
    ResolvedEni r = resolved(kMine, ResolveSource::Imds, "subnet-a");
    SeenEni s = seen({}, "subnet-a", {"10.0.0.9"});
    s.deviceIndex = 2;
    if (row.world == TwoIps) s.ipv4Count = 2;
    if (row.world == Prefix) s.ipv4Prefixes = 1;
    if (row.world == Trunk) s.interfaceType = "trunk";
    if (row.world == Primary) s.deviceIndex = 0;
    if (row.world == PrimaryByImdsUnread) r.deviceIndex = 0;
    if (row.world == TwoIpsByImdsUnread) {
      r.ipv4Count = 2;
      r.ipv4Prefixes = 0;
    }
    obs.eniOf["ns/web"] = r;
    const bool unread = row.world == PrimaryByImdsUnread || row.world == TwoIpsByImdsUnread ||
                        row.world == UnreadJoining;
    if (!unread) {
      obs.fresh[kMine] = s;
      obs.observed[kMine] = {};
    }
    TagPlanOptions options;
    options.sharedEnis = row.policy;
    auto out = planned({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs, options);
    if (row.verdict == ok) {
      EXPECT_EQ(out.verdicts.count("ns/web"), 0u);
      const EniPlan* p = planFor(out, kMine);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(p->writes());
      continue;
    }
    ASSERT_EQ(out.verdicts.count("ns/web"), 1u);
    EXPECT_EQ(out.verdicts.at("ns/web").reason, row.verdict);
    EXPECT_NE(out.verdicts.at("ns/web").message.find(row.says), std::string::npos)
        << out.verdicts.at("ns/web").message;
    EXPECT_EQ(planFor(out, kMine), nullptr) << "no write";
    EXPECT_EQ(out.retry, row.verdict == SyncReason::EniLookupFailed);
  }
}

// An agent that merged before (the old default) and now refuses: at its next read of a shared ENI
// its member pods are refused and the tags it owns there are removed, with the value it wrote.
TEST(TagPlan, RefuseRemovesWhatMergeOwnedOnASharedEni) {
  const TagSet owned{{"Team", "A"}};
  NodeState base;
  base.enis[kMine].tags = owned;
  base.enis[kMine].hash = tagHash(owned);
  base.enis[kMine].pods["ns/web"] = PodRecord{"uid-web", "10.0.0.9"};
  TagObservation obs;
  obs.eniOf["ns/web"] = resolved(kMine, ResolveSource::Cache, "subnet-a");
  obs.fresh[kMine] = seen({{"Team", "A"}, {kHashTagKey, tagHash(owned)}, {"Other", "x"}},
                          "subnet-a", {"10.0.0.8", "10.0.0.9"});
  obs.observed[kMine] = obs.fresh[kMine].tags;
  auto out = planned({job("web", "10.0.0.9", owned)}, base, obs);
  EXPECT_EQ(out.verdicts.at("ns/web").reason, SyncReason::EniValidationFailed);
  const EniPlan* p = planFor(out, kMine);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->toDelete, (TagSet{{"Team", "A"}, {kHashTagKey, tagHash(owned)}}));
  EXPECT_TRUE(p->toSet.empty());
  EXPECT_EQ(out.droppedPods, std::set<std::string>{"ns/web"});
}

TEST(TagPlan, NoWriteToAnEniThePassDidNotRead) {
  TagObservation obs;
  obs.eniOf["ns/web"] = resolved(kMine, ResolveSource::Imds);
  // Under refuse (the default) a pod joining an unread ENI stops earlier (SharedEniTagging): the
  // guard is for every writer, so it is shown under merge.
  TagPlanOptions merge;
  merge.sharedEnis = SharedEniPolicy::Merge;
  auto out = planned({job("web", "10.0.0.9", {{"Team", "A"}})}, NodeState{}, obs, merge);
  const EniPlan* p = planFor(out, kMine);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->writes());
  EXPECT_TRUE(p->verdicts.empty()) << "no verdict either: it is tried again";
  EXPECT_TRUE(out.retry);
}

TEST(TagPlan, PlansPastTheNodeStateBudgetAreWithheld) {
  // Seven pods, each wanting 9.7 KB of tags on its own ENI: with their write-aheads the node
  // state holds four of them.
  std::vector<PodJob> pods;
  TagObservation obs;
  for (int p = 0; p < 7; ++p) {
    TagSet tags;
    for (int t = 0; t < 26; ++t) {
      std::string key = "pod" + std::to_string(p) + "tag" + std::to_string(t) + "-";
      tags[key + std::string(127 - key.size(), 'k')] = std::string(240, 'v');
    }
    const std::string eni = "eni-" + std::to_string(p);
    const std::string ip = "10.0.0." + std::to_string(10 + p);
    pods.push_back(job("big" + std::to_string(p), ip, tags));
    obs.eniOf[pods.back().key] = resolved(eni, ResolveSource::Imds);
    obs.fresh[eni] = seen({}, "subnet-a", {ip});
    obs.observed[eni] = {};
  }
  auto out = planned(pods, NodeState{}, obs);
  int writing = 0, withheld = 0;
  for (const auto& p : out.plans) {
    if (p.writes()) {
      ++writing;
      continue;
    }
    ++withheld;
    EXPECT_EQ(p.verdicts.at(0).reason, SyncReason::TaggingFailed);
    EXPECT_NE(p.verdicts.at(0).message.find("64 KiB"), std::string::npos);
  }
  EXPECT_GE(writing, 3);
  EXPECT_GE(withheld, 1);
}

// A scoped pass that holds only its scope's records keeps the budget of the whole node state
// (TagPlanOptions::whole): the records outside its scope count, and its own count as it plans
// them, not as the whole state last had them.
TEST(TagPlan, AScopedPassHoldingOnlyItsRecordsKeepsTheWholeStatesBudget) {
  auto bigTags = [](const std::string& prefix, int n = 26) {
    TagSet tags;
    for (int t = 0; t < n; ++t) {
      std::string key = prefix + "tag" + std::to_string(t) + "-";
      tags[key + std::string(127 - key.size(), 'k')] = std::string(240, 'v');
    }
    return tags;
  };
  // Six recorded ENIs of 10.4 KB each outside the scope, and the scope's ENI, recorded small:
  // 62 KB in all, under the 64 KiB budget.
  NodeState whole;
  for (int e = 0; e < 6; ++e) {
    const std::string id = "eni-other" + std::to_string(e);
    whole.enis[id].tags = bigTags("other" + std::to_string(e), 28);
    whole.enis[id].pods["ns/o" + std::to_string(e)] = PodRecord{"uid", "10.0.1.1"};
  }
  whole.enis[kMine].pods["ns/a"] = PodRecord{"uid-a", "10.0.0.1"};
  const auto size = encodeNodeState(whole);
  ASSERT_TRUE(size);
  ASSERT_GT(size->size(), 60000u);
  NodeState part;
  part.enis[kMine] = whole.enis.at(kMine);
  const std::set<std::string> scope = {kMine};
  TagObservation obs;
  obs.eniOf["ns/a"] = resolved(kMine, ResolveSource::Cache);
  obs.fresh[kMine] = seen({}, "subnet-a", {"10.0.0.1"});
  obs.observed[kMine] = {};
  RecordView view;
  view.refresh(whole);
  auto plan = [&](const std::vector<PodJob>& pods, const RecordView* with) {
    TagPlanOptions options;
    options.whole = with;
    TagPassOutput out;
    planTags(pods, part, obs, options, PlanStage::Final, out, &scope);
    return out;
  };
  // The write-ahead of 26 more tags on the scope's ENI (their keys, 3.4 KB) takes the whole
  // state past 64 KiB: withheld.
  const std::vector<PodJob> big = {job("a", "10.0.0.1", bigTags("mine"))};
  auto out = plan(big, &view);
  ASSERT_NE(planFor(out, kMine), nullptr);
  EXPECT_FALSE(planFor(out, kMine)->writes());
  EXPECT_NE(planFor(out, kMine)->verdicts.at(0).message.find("64 KiB"), std::string::npos);
  // Without the whole state the pass would size its own record alone, and write.
  EXPECT_TRUE(planFor(plan(big, nullptr), kMine)->writes());
  // A small change fits, and so does the same plan made from the whole state itself.
  const std::vector<PodJob> small = {job("a", "10.0.0.1", {{"Team", "a"}})};
  EXPECT_TRUE(planFor(plan(small, &view), kMine)->writes());
  TagPassOutput full;
  planTags(small, whole, obs, {}, PlanStage::Final, full, &scope);
  EXPECT_EQ(full.plans.size(), 1u);
  EXPECT_EQ(full.state.enis.at(kMine), plan(small, &view).state.enis.at(kMine));
}

// ---------------------------------------------------------------- record

TEST(TagPlan, RecordingTheOutcomeOfTheWrites) {
  const TagSet before{{"Team", "A"}, {"Env", "prod"}};
  const TagSet want{{"Team", "B"}};
  struct Row {
    const char* name;
    std::optional<WriteFailure> failure;
    bool dryRun;
    SyncReason verdict;
    TagSet owned;  // the record's tags afterwards
    std::string hash;
    bool pendingLeft;
    bool member;
    bool retry;
  };
  const std::vector<Row> rows = {
      {"written", std::nullopt, false, SyncReason::Synced, want, tagHash(want), false, true, false},
      {"CreateTags failed, may have landed", WriteFailure{"throttled", true, true}, false,
       SyncReason::TaggingFailed, before, tagHash(before), true, false, true},
      {"CreateTags refused (4xx)", WriteFailure{"invalid", false, true}, false,
       SyncReason::TaggingFailed, before, tagHash(before), false, false, false},
      {"only DeleteTags failed",
       WriteFailure{"throttled", true, false},
       false,
       SyncReason::TaggingFailed,
       {{"Team", "B"}, {"Env", "prod"}},
       tagHash(want),
       false,
       false,
       true},
      {"dry run", std::nullopt, true, SyncReason::DryRun, before, tagHash(before), true, false,
       false},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    NodeState base;
    base.enis[kMine].tags = before;
    base.enis[kMine].hash = tagHash(before);
    base.enis[kMine].pendingHash = tagHash(want);  // the write-ahead of this pass
    base.enis[kMine].pendingKeys = {"Team"};
    TagPassOutput out;
    out.state = base;
    out.eniOf["ns/web"] = resolved(kMine, ResolveSource::Imds);
    EniPlan plan;
    plan.eniId = kMine;
    plan.toSet = {{"Team", "B"}, {kHashTagKey, tagHash(want)}};
    plan.toDelete = {{"Env", "prod"}};
    plan.owned = want;
    plan.hash = tagHash(want);
    plan.verdicts = {{"ns/web", SyncReason::Synced, ""}};
    out.plans = {plan};
    std::map<std::string, WriteFailure> failed;
    if (row.failure) failed[kMine] = *row.failure;
    recordWrites({job("web", "10.0.0.9", want)}, failed,
                 TagPlanOptions{{}, SharedEniPolicy::Refuse, row.dryRun}, out);
    EXPECT_EQ(out.verdicts.at("ns/web").reason, row.verdict);
    const EniRecord& r = out.state.enis.at(kMine);
    EXPECT_EQ(r.tags, row.owned);
    EXPECT_EQ(r.hash, row.hash);
    EXPECT_EQ(r.hasPending(), row.pendingLeft);
    EXPECT_EQ(r.pods.count("ns/web") == 1, row.member);
    EXPECT_EQ(out.appliedByPod.count("ns/web") == 1, row.verdict == SyncReason::Synced);
    EXPECT_EQ(out.retry, row.retry);
  }
}

}  // namespace
}  // namespace eni
