#include "agent/eni/planner.h"

#include <gtest/gtest.h>

namespace eni {
namespace {

PodDesire pod(const std::string& key, TagSet tags) {
  PodDesire p;
  p.key = key;
  p.uid = key + "-uid";
  p.ip = "10.0.1.1";
  p.tags = std::move(tags);
  return p;
}

EniRecord record(TagSet tags) {
  EniRecord r;
  r.hash = tags.empty() ? "" : tagHash(tags);
  r.tags = std::move(tags);
  return r;
}

TEST(Planner, FirstTagWritesTagsAndHashOnce) {
  EniInput in{"eni-1", nullptr, nullptr, {pod("ns/a", {{"Team", "Platform"}, {"Cost", "1000"}})}};
  auto plan = planEni(in, {});
  const TagSet want{{"Team", "Platform"}, {"Cost", "1000"}};
  EXPECT_EQ(plan.toSet,
            (TagSet{{"Team", "Platform"}, {"Cost", "1000"}, {kHashTagKey, tagHash(want)}}));
  EXPECT_TRUE(plan.toDelete.empty());
  EXPECT_EQ(plan.owned, want);
  EXPECT_EQ(plan.hash, tagHash(want));
  ASSERT_EQ(plan.verdicts.size(), 1u);
  EXPECT_EQ(plan.verdicts[0].reason, SyncReason::Synced);
}

TEST(Planner, NoChangeNoWrite) {
  const TagSet tags{{"Team", "Platform"}};
  auto rec = record(tags);
  auto plan = planEni({"eni-1", &rec, nullptr, {pod("ns/a", tags)}}, {});
  EXPECT_FALSE(plan.writes());
  EXPECT_EQ(plan.verdicts[0].reason, SyncReason::Synced);
}

TEST(Planner, ChangeAndRemoveIsOneSetAndOneDelete) {
  auto rec = record({{"Team", "Platform"}, {"Cost", "1000"}, {"Env", "Prod"}});
  const TagSet want{{"Team", "Dev"}, {"Env", "Prod"}};
  auto plan = planEni({"eni-1", &rec, nullptr, {pod("ns/a", want)}}, {});
  EXPECT_EQ(plan.toSet, (TagSet{{"Team", "Dev"}, {kHashTagKey, tagHash(want)}}));
  EXPECT_EQ(plan.toDelete, (TagSet{{"Cost", "1000"}})) << "removed only while it holds our value";
}

TEST(Planner, NoPodsLeftRemovesEveryOwnedTagAndTheHash) {
  auto rec = record({{"Team", "Platform"}});
  auto plan = planEni({"eni-1", &rec, nullptr, {}}, {});
  EXPECT_TRUE(plan.toSet.empty());
  EXPECT_EQ(plan.toDelete, (TagSet{{"Team", "Platform"}, {kHashTagKey, rec.hash}}));
  EXPECT_TRUE(plan.owned.empty());
  EXPECT_TRUE(plan.hash.empty());
}

TEST(Planner, SharedEniMergesAgreeingTagsAndFlagsTheDisagreement) {
  auto plan = planEni({"eni-1",
                       nullptr,
                       nullptr,
                       {pod("ns/a", {{"Team", "Platform"}, {"App", "a"}}),
                        pod("ns/b", {{"Team", "Platform"}}), pod("ns/c", {{"App", "c"}})}},
                      {});
  EXPECT_EQ(plan.owned, (TagSet{{"Team", "Platform"}}));
  ASSERT_EQ(plan.verdicts.size(), 3u);
  EXPECT_EQ(plan.verdicts[0].reason, SyncReason::Conflict);
  EXPECT_NE(plan.verdicts[0].message.find("disagree on tag App"), std::string::npos)
      << plan.verdicts[0].message;
  EXPECT_EQ(plan.verdicts[1].reason, SyncReason::Synced);
  EXPECT_EQ(plan.verdicts[2].reason, SyncReason::Conflict);
}

TEST(Planner, AllowSharedTurnsTheConflictCheckOff) {
  auto plan = planEni(
      {"eni-1", nullptr, nullptr, {pod("ns/a", {{"App", "a"}}), pod("ns/b", {{"App", "b"}})}},
      PlanOptions{true});
  EXPECT_EQ(plan.owned, (TagSet{{"App", "a"}}));
  for (const auto& v : plan.verdicts) EXPECT_EQ(v.reason, SyncReason::Synced);
}

// Seed scenario 8, row by row.
TEST(Planner, HashMatrix) {
  const TagSet want{{"Team", "Dev"}};
  const TagSet ours{{"Team", "Platform"}};
  auto rec = record(ours);
  // 1. ENI hash empty: claim it.
  TagSet observed{{"Other", "x"}};
  auto p1 = planEni({"eni-1", nullptr, &observed, {pod("ns/a", want)}}, {});
  EXPECT_EQ(p1.verdicts[0].reason, SyncReason::Synced);
  EXPECT_TRUE(p1.writes());
  // 2. ENI hash == desired: already synced, nothing to write.
  observed = {{"Team", "Dev"}, {kHashTagKey, tagHash(want)}};
  auto r2 = record(want);
  auto p2 = planEni({"eni-1", &r2, &observed, {pod("ns/a", want)}}, {});
  EXPECT_EQ(p2.verdicts[0].reason, SyncReason::Synced);
  EXPECT_FALSE(p2.writes());
  // 3. ENI hash == ours: update.
  observed = {{"Team", "Platform"}, {kHashTagKey, tagHash(ours)}};
  auto p3 = planEni({"eni-1", &rec, &observed, {pod("ns/a", want)}}, {});
  EXPECT_EQ(p3.verdicts[0].reason, SyncReason::Synced);
  EXPECT_EQ(p3.toSet, (TagSet{{"Team", "Dev"}, {kHashTagKey, tagHash(want)}}));
  // 4. Someone else's hash: Conflict, no write.
  observed = {{"Team", "Platform"}, {kHashTagKey, "ffffffffffffffff"}};
  auto p4 = planEni({"eni-1", &rec, &observed, {pod("ns/a", want)}}, {});
  EXPECT_EQ(p4.verdicts[0].reason, SyncReason::Conflict);
  EXPECT_NE(p4.verdicts[0].message.find("ffffffffffffffff"), std::string::npos);
  EXPECT_FALSE(p4.writes());
  EXPECT_EQ(p4.owned, ours) << "ownership is unchanged by a conflict";
  // 4, with --allow-shared-eni-tagging: proceed.
  auto p4s = planEni({"eni-1", &rec, &observed, {pod("ns/a", want)}}, PlanOptions{true});
  EXPECT_EQ(p4s.verdicts[0].reason, SyncReason::Synced);
  EXPECT_TRUE(p4s.writes());
}

TEST(Planner, NeverOverwritesOrRemovesForeignKeys) {
  TagSet observed{{"Owner", "finance"}, {"Keep", "me"}};
  auto plan = planEni(
      {"eni-1", nullptr, &observed, {pod("ns/a", {{"Owner", "platform"}, {"Team", "x"}})}}, {});
  EXPECT_EQ(plan.toSet.count("Owner"), 0u);
  EXPECT_EQ(plan.toSet.count("Team"), 1u);
  EXPECT_EQ(plan.verdicts[0].reason, SyncReason::Conflict);
  EXPECT_NE(plan.verdicts[0].message.find("Owner=finance"), std::string::npos);
  auto rec = record({{"Team", "x"}});
  TagSet tagged = observed;
  tagged["Team"] = "x";
  tagged[kHashTagKey] = rec.hash;
  auto cleanup = planEni({"eni-1", &rec, &tagged, {}}, {});
  EXPECT_EQ(cleanup.toDelete, (TagSet{{"Team", "x"}, {kHashTagKey, rec.hash}}));
}

// A record counts only while the ENI carries its hash: the node-state annotation can be written by
// others (a forged or stale record), and removing what it claims would remove someone's tags.
TEST(Planner, ARecordTheEniDoesNotConfirmOwnsNothing) {
  auto forged = record({{"Owner", "finance"}});
  const TagSet foreign{{"Owner", "finance"}};  // someone else's tag, and no hash of ours
  auto plan = planEni({"eni-1", &forged, &foreign, {}}, {});
  EXPECT_FALSE(plan.writes()) << "nothing of the record is removed";
  EXPECT_TRUE(plan.owned.empty()) << "and it is forgotten";
  // The same record on an ENI that carries its hash is ours: removed, with the value written.
  const TagSet ours{{"Owner", "finance"}, {kHashTagKey, forged.hash}};
  EXPECT_EQ(planEni({"eni-1", &forged, &ours, {}}, {}).toDelete,
            (TagSet{{"Owner", "finance"}, {kHashTagKey, forged.hash}}));
}

TEST(Planner, RemovalsSkipKeysThatNoLongerHoldTheOwnedValue) {
  auto rec = record({{"Team", "Platform"}, {"Cost", "1"}, {"Env", "prod"}});
  // Since the agent wrote them: Cost was changed by someone, Env removed.
  const TagSet observed{{"Team", "Platform"}, {"Cost", "2"}, {kHashTagKey, rec.hash}};
  auto plan = planEni({"eni-1", &rec, &observed, {}}, {});
  EXPECT_EQ(plan.toDelete, (TagSet{{"Team", "Platform"}, {kHashTagKey, rec.hash}}));
}

TEST(Planner, TheTagsMustFitEc2sFiftyWithTheOnesOthersSetAndTheHash) {
  TagSet observed;
  for (int i = 0; i < 10; ++i) observed["Foreign" + std::to_string(i)] = "x";
  TagSet want;
  for (int i = 0; i < 39; ++i) want["Mine" + std::to_string(i)] = "y";
  auto fits = planEni({"eni-1", nullptr, &observed, {pod("ns/a", want)}}, {});
  EXPECT_EQ(fits.verdicts[0].reason, SyncReason::Synced) << "10 + 39 + the hash = 50";
  EXPECT_TRUE(fits.writes());
  want["Mine39"] = "y";
  auto over = planEni({"eni-1", nullptr, &observed, {pod("ns/a", want)}}, {});
  EXPECT_EQ(over.verdicts[0].reason, SyncReason::InvalidTags);
  EXPECT_NE(over.verdicts[0].message.find("only 39 of the pods' tags fit"), std::string::npos)
      << over.verdicts[0].message;
  EXPECT_FALSE(over.writes());
}

TEST(Planner, AdoptsWhatK8sEniTaggerAppliedWithoutAWrite) {
  const TagSet tags{{"Team", "Platform"}};
  PodDesire p = pod("ns/a", tags);
  p.lastApplied = tags;
  p.lastAppliedHash = tagHash(tags);
  auto plan = planEni({"eni-1", nullptr, nullptr, {p}}, {});
  EXPECT_FALSE(plan.writes());
  EXPECT_EQ(plan.owned, tags);
  TagSet observed{{"Team", "Platform"}, {kHashTagKey, tagHash(tags)}};
  EXPECT_FALSE(planEni({"eni-1", nullptr, &observed, {p}}, {}).writes());
  // A hash that does not match its tags proves nothing.
  p.lastAppliedHash = "0000000000000000";
  EXPECT_TRUE(planEni({"eni-1", nullptr, nullptr, {p}}, {}).writes());
}

TEST(Planner, DriftRewritesMissingOwnedTags) {
  const TagSet tags{{"Team", "Platform"}, {"Cost", "1"}};
  auto rec = record(tags);
  TagSet observed{{"Team", "Platform"}, {kHashTagKey, tagHash(tags)}};  // Cost was removed by hand
  auto plan = planEni({"eni-1", &rec, &observed, {pod("ns/a", tags)}}, {});
  EXPECT_EQ(plan.toSet, (TagSet{{"Cost", "1"}, {kHashTagKey, tagHash(tags)}}));
}

TEST(Coalesce, IdenticalChangesShareOneCall) {
  std::vector<EniPlan> plans;
  for (int i = 0; i < 50; ++i) {
    plans.push_back(planEni({"eni-" + std::to_string(i),
                             nullptr,
                             nullptr,
                             {pod("ns/p" + std::to_string(i), {{"Team", "A"}})}},
                            {}));
  }
  plans.push_back(planEni({"eni-x", nullptr, nullptr, {pod("ns/x", {{"Team", "B"}})}}, {}));
  auto writes = coalesceWrites(plans);
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].resources.size() + writes[1].resources.size(), 51u);
  std::vector<EniPlan> many;
  for (int i = 0; i < 2500; ++i) {
    many.push_back(
        planEni({"eni-" + std::to_string(i), nullptr, nullptr, {pod("ns/p", {{"T", "A"}})}}, {}));
  }
  EXPECT_EQ(coalesceWrites(many).size(), 3u) << "at most 1000 resources per CreateTags";
}

TEST(Coalesce, RemovalsShareACallOnlyWithTheSameValues) {
  EniPlan a{"eni-a", {}, {{"Team", "A"}}, {}, "", {}};
  EniPlan b{"eni-b", {}, {{"Team", "A"}}, {}, "", {}};
  EniPlan c{"eni-c", {}, {{"Team", "B"}}, {}, "", {}};
  auto writes = coalesceWrites({a, b, c});
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_FALSE(writes[0].create);
  EXPECT_EQ(writes[0].resources, (std::vector<std::string>{"eni-a", "eni-b"}));
  EXPECT_EQ(writes[0].tags, (TagSet{{"Team", "A"}})) << "DeleteTags names the value";
  EXPECT_EQ(writes[1].tags, (TagSet{{"Team", "B"}}));
}

}  // namespace
}  // namespace eni
