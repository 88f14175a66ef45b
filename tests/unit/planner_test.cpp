#include "agent/tagger/planner.h"

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
  EXPECT_EQ(plan.toDelete, std::vector<std::string>{"Cost"});
}

TEST(Planner, NoPodsLeftRemovesEveryOwnedTagAndTheHash) {
  auto rec = record({{"Team", "Platform"}});
  auto plan = planEni({"eni-1", &rec, nullptr, {}}, {});
  EXPECT_TRUE(plan.toSet.empty());
  EXPECT_EQ(plan.toDelete, (std::vector<std::string>{"Team", kHashTagKey}));
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
  auto cleanup = planEni({"eni-1", &rec, &observed, {}}, {});
  EXPECT_EQ(cleanup.toDelete, (std::vector<std::string>{"Team", kHashTagKey}));
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

}  // namespace
}  // namespace eni
