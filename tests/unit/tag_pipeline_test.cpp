#include "agent/tagger/tag_pipeline.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace eni {
namespace {

using Id = TagPipeline::Id;

// One step of a table row: what happens to which pass (by the order it started, 1-based).
struct Step {
  enum Kind { Start, Planned, PlannedNoRecord, Stored, Refused, WriteNext, Clean, Failed } kind;
  int pass = 0;
};

struct Row {
  std::string name;
  std::vector<Step> steps;
  // After the steps: each started pass's stage, "-" when it is gone.
  std::vector<std::string> stages;
  std::vector<int> written;  // the passes nextWrite() handed out, in order
  std::vector<int> dropped;  // the passes the steps removed without their writes
};

// gtest prints a row by its name (ctest lists the parameters).
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

std::string name(std::optional<PassStage> s) {
  if (!s) return "-";
  switch (*s) {
    case PassStage::Planning:
      return "Planning";
    case PassStage::Recording:
      return "Recording";
    case PassStage::Stored:
      return "Stored";
    case PassStage::Writing:
      return "Writing";
    case PassStage::Stale:
      return "Stale";
  }
  return "?";
}

class TagPipelineTable : public testing::TestWithParam<Row> {};

TEST_P(TagPipelineTable, WritesOnlyRecordedPassesInOrder) {
  const Row& row = GetParam();
  TagPipeline p;
  std::vector<Id> ids;
  std::vector<int> written, dropped;
  auto index = [&](Id id) {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == id) return static_cast<int>(i) + 1;
    }
    return 0;
  };
  auto drops = [&](const std::vector<Id>& d) {
    for (auto id : d) dropped.push_back(index(id));
  };
  for (const auto& s : row.steps) {
    const Id id = s.pass > 0 && s.pass <= static_cast<int>(ids.size()) ? ids[s.pass - 1] : 0;
    switch (s.kind) {
      case Step::Start:
        ids.push_back(p.start());
        break;
      case Step::Planned:
        if (!p.planned(id, true)) dropped.push_back(s.pass);
        break;
      case Step::PlannedNoRecord:
        if (!p.planned(id, false)) dropped.push_back(s.pass);
        break;
      case Step::Stored:
        drops(p.recorded(id, true));
        break;
      case Step::Refused:
        drops(p.recorded(id, false));
        break;
      case Step::WriteNext:
        if (auto w = p.nextWrite()) written.push_back(index(*w));
        break;
      case Step::Clean:
        drops(p.finished(id, true));
        break;
      case Step::Failed:
        drops(p.finished(id, false));
        break;
    }
  }
  std::vector<std::string> stages;
  for (auto id : ids) stages.push_back(name(p.stage(id)));
  EXPECT_EQ(stages, row.stages);
  EXPECT_EQ(written, row.written);
  EXPECT_EQ(dropped, row.dropped);
}

using S = Step;
INSTANTIATE_TEST_SUITE_P(
    Pipeline, TagPipelineTable,
    testing::Values(
        Row{"OnePassWritesOnlyOnceItsRecordLanded",
            {{S::Start, 0}, {S::Planned, 1}, {S::WriteNext, 0}, {S::Stored, 1}, {S::WriteNext, 0}},
            {"Writing"},
            {1},
            {}},
        Row{"NoRecordNeededWritesAtOnce",
            {{S::Start, 0}, {S::PlannedNoRecord, 1}, {S::WriteNext, 0}, {S::Clean, 1}},
            {"-"},
            {1},
            {}},
        Row{"TheNextPassPlansWhileTheFirstRecordsAndWritesAfterIt",
            {{S::Start, 0},
             {S::Planned, 1},
             {S::Start, 0},  // planning while pass 1's patch is in flight
             {S::Planned, 2},
             {S::Stored, 2},  // pass 2's record landed first: it still waits for pass 1
             {S::WriteNext, 0},
             {S::Stored, 1},
             {S::WriteNext, 0},
             {S::WriteNext, 0},  // pass 1 is writing: pass 2 waits
             {S::Clean, 1},
             {S::WriteNext, 0}},
            {"-", "Writing"},
            {1, 2},
            {}},
        Row{"ARefusedRecordDropsItAndEveryLaterPassButNotAnEarlierOne",
            {{S::Start, 0},
             {S::Planned, 1},
             {S::Start, 0},
             {S::Planned, 2},
             {S::Start, 0},
             {S::Planned, 3},
             {S::Refused, 2},
             {S::Stored, 1},
             {S::Stored, 3},  // too late: pass 3 planned on pass 2
             {S::WriteNext, 0},
             {S::Clean, 1},
             {S::WriteNext, 0}},
            {"-", "-", "-"},
            {1},
            {2, 3}},
        Row{"AFailedWriteMakesTheLaterPassesStaleAndAPlanningOneStaysUntilPlanned",
            {{S::Start, 0},
             {S::Planned, 1},
             {S::Stored, 1},
             {S::Start, 0},
             {S::Planned, 2},
             {S::Start, 0},  // still planning when pass 1 fails
             {S::WriteNext, 0},
             {S::Failed, 1},
             {S::WriteNext, 0},
             {S::Planned, 3}},  // its plan comes back: dropped, never written
            {"-", "-", "-"},
            {1},
            {2, 3, 3}},
        Row{"ACleanWriteLetsTheNextRecordedPassWrite",
            {{S::Start, 0},
             {S::PlannedNoRecord, 1},
             {S::Start, 0},
             {S::Planned, 2},
             {S::WriteNext, 0},
             {S::Clean, 1},
             {S::WriteNext, 0},  // pass 2's record has not landed
             {S::Stored, 2},
             {S::WriteNext, 0}},
            {"-", "Writing"},
            {1, 2},
            {}}),
    [](const testing::TestParamInfo<Row>& row) { return row.param.name; });

TEST(TagPipeline, NewestSkipsStalePassesAndRecordedAfterSeesOnlyRecordedOnes) {
  TagPipeline p;
  const Id a = p.start();
  EXPECT_EQ(p.newest(), a);
  ASSERT_TRUE(p.planned(a, true));
  const Id b = p.start();
  EXPECT_FALSE(p.recordedAfter(a)) << "pass b is only planning: the store holds a's state";
  EXPECT_EQ(p.newest(), b);
  ASSERT_TRUE(p.planned(b, true));
  EXPECT_TRUE(p.recordedAfter(a));
  EXPECT_FALSE(p.recordedAfter(b));
  EXPECT_TRUE(p.olderThan(b));
  EXPECT_FALSE(p.olderThan(a));
  const Id c = p.start();
  EXPECT_EQ(p.recorded(b, false), (std::vector<Id>{b, c}));
  EXPECT_EQ(p.stage(c), PassStage::Stale);
  EXPECT_EQ(p.newest(), a) << "the next pass plans on a, not on a pass that writes nothing";
}

}  // namespace
}  // namespace eni
