// Timer and PassRunner: the pass machinery the reconcilers share, on a manual scheduler.
#include "agent/base/pass_runner.h"

#include <gtest/gtest.h>

#include "agent/base/timer.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

TEST(Timer, ReArmingReplacesAndDestroyingCancels) {
  testing::ManualScheduler scheduler;
  int fired = 0;
  {
    Timer timer(scheduler, [&] { ++fired; });
    timer.enable(Duration(100));
    timer.enable(Duration(300));  // replaces the first
    EXPECT_EQ(scheduler.pending(), 1u);
    scheduler.advance(Duration(200));
    EXPECT_EQ(fired, 0);
    scheduler.advance(Duration(100));
    EXPECT_EQ(fired, 1);
    EXPECT_FALSE(timer.enabled());
    timer.enableIfDisabled(Duration(50));
    timer.enableIfDisabled(Duration(500));  // already armed: the earlier deadline stands
    scheduler.advance(Duration(50));
    EXPECT_EQ(fired, 2);
    timer.enable(Duration(100));
    timer.disable();
    scheduler.advance(Duration(1000));
    EXPECT_EQ(fired, 2);
    timer.enable(Duration(100));
  }  // destroyed while armed
  EXPECT_EQ(scheduler.pending(), 0u);
  scheduler.advance(Duration(1000));
  EXPECT_EQ(fired, 2);
}

struct Recorder {
  std::vector<PassRunner::Done> open;  // passes running, their `done` not called yet
  int runs = 0;
};

PassRunner makeRunner(testing::ManualScheduler& scheduler, Recorder& r) {
  return PassRunner(scheduler, {Duration(20), Duration(5000)}, [&r](PassRunner::Done done) {
    ++r.runs;
    r.open.push_back(std::move(done));
  });
}

TEST(PassRunner, MarksCoalesceAndNothingRunsBeforeStart) {
  testing::ManualScheduler scheduler;
  Recorder r;
  PassRunner runner = makeRunner(scheduler, r);
  runner.markDirty();
  scheduler.advance(Duration(1000));
  EXPECT_EQ(r.runs, 0) << "not started";
  runner.start();
  runner.markDirty();
  runner.markDirty();
  scheduler.advance(Duration(20));
  EXPECT_EQ(r.runs, 1) << "three marks, one pass";
  EXPECT_TRUE(runner.running());
  EXPECT_FALSE(runner.idle());
  r.open.back()(false);
  EXPECT_TRUE(runner.idle());
  EXPECT_EQ(runner.passes(), 1u);
}

TEST(PassRunner, OnePassAtATimeMarksDuringAPassStartTheNext) {
  testing::ManualScheduler scheduler;
  Recorder r;
  PassRunner runner = makeRunner(scheduler, r);
  runner.start();
  runner.markDirty();
  scheduler.advance(Duration(20));
  runner.markDirty();  // during the pass
  scheduler.advance(Duration(1000));
  EXPECT_EQ(r.runs, 1) << "never two at once";
  r.open.back()(true);  // it asks for a retry, but a mark is waiting: that comes first
  scheduler.advance(Duration(20));
  EXPECT_EQ(r.runs, 2);
  r.open.back()(false);
  r.open.front()(false);  // a second `done` of an old pass is ignored
  EXPECT_TRUE(runner.idle());
}

// A burst's marks wait for the pass in progress, not for a window of their own after it as well:
// the window opens at the first mark.
TEST(PassRunner, MarksDuringAPassWaitForItsEndOrTheirWindowWhicheverIsLater) {
  testing::ManualScheduler scheduler;
  Recorder r;
  PassRunner runner = makeRunner(scheduler, r);
  runner.start();
  runner.markDirty();
  scheduler.advance(Duration(20));
  ASSERT_EQ(r.runs, 1);
  runner.markDirty();  // 100 ms before the pass ends
  scheduler.advance(Duration(100));
  r.open.back()(false);
  scheduler.advance(Duration(0));
  EXPECT_EQ(r.runs, 2) << "the window is over: at once";
  runner.markDirty();  // 5 ms before this pass ends
  scheduler.advance(Duration(5));
  r.open.back()(false);
  scheduler.advance(Duration(14));
  EXPECT_EQ(r.runs, 2) << "its window is not over";
  scheduler.advance(Duration(1));
  EXPECT_EQ(r.runs, 3);
  r.open.back()(false);
  EXPECT_TRUE(runner.idle());
}

// Marks that already waited (for a pass in flight) are due at once: they close an open window
// early and wait for a running pass only.
TEST(PassRunner, MarksDueRunAtOnceOrWhenThePassInProgressEnds) {
  testing::ManualScheduler scheduler;
  Recorder r;
  PassRunner runner = makeRunner(scheduler, r);
  runner.start();
  runner.markDue();
  scheduler.advance(Duration(0));
  EXPECT_EQ(r.runs, 1) << "no window";
  runner.markDue();  // during the pass
  scheduler.advance(Duration(100));
  EXPECT_EQ(r.runs, 1) << "never two at once";
  r.open.back()(false);
  scheduler.advance(Duration(0));
  EXPECT_EQ(r.runs, 2);
  r.open.back()(false);
  runner.markDirty();
  scheduler.advance(Duration(5));
  runner.markDue();  // the window the first mark opened closes now
  scheduler.advance(Duration(0));
  EXPECT_EQ(r.runs, 3);
  r.open.back()(false);
  scheduler.advance(Duration(100));
  EXPECT_EQ(r.runs, 3);
  EXPECT_TRUE(runner.idle());
}

TEST(PassRunner, ARetryRunsAfterTheRetryDelayAndRunAfterWaitsForWhatIsDue) {
  testing::ManualScheduler scheduler;
  Recorder r;
  PassRunner runner = makeRunner(scheduler, r);
  runner.start();
  runner.markDirty();
  scheduler.advance(Duration(20));
  r.open.back()(true);
  scheduler.advance(Duration(4999));
  EXPECT_EQ(r.runs, 1);
  scheduler.advance(Duration(1));
  EXPECT_EQ(r.runs, 2);
  r.open.back()(false);
  runner.runAfter(Duration(300));
  scheduler.advance(Duration(299));
  EXPECT_EQ(r.runs, 2);
  scheduler.advance(Duration(1));
  EXPECT_EQ(r.runs, 3);
  r.open.back()(false);
  EXPECT_TRUE(runner.idle());
}

// A pass whose calls would wait for the EC2 client's bucket waits before it starts instead, and
// what is marked meanwhile joins it: one pass, not one now and one more for the late marks.
TEST(PassRunner, APassHeldOffForItsCallsTakesInTheMarksMadeMeanwhile) {
  testing::ManualScheduler scheduler;
  Recorder r;
  Duration hold{0};
  int asked = 0;
  PassRunner runner(scheduler,
                    {Duration(20), Duration(5000),
                     [&] {
                       ++asked;
                       return hold;
                     }},
                    [&r](PassRunner::Done done) {
                      ++r.runs;
                      r.open.push_back(std::move(done));
                    });
  runner.start();
  runner.markDirty();
  scheduler.advance(Duration(20));
  EXPECT_EQ(r.runs, 1) << "nothing to wait for";
  r.open.back()(false);
  hold = Duration(300);
  runner.markDirty();
  scheduler.advance(Duration(20));
  EXPECT_EQ(r.runs, 1) << "held off";
  EXPECT_FALSE(runner.idle());
  runner.markDirty();  // during the hold
  scheduler.advance(Duration(299));
  EXPECT_EQ(r.runs, 1);
  hold = Duration(0);
  scheduler.advance(Duration(1));
  EXPECT_EQ(r.runs, 2) << "both marks in one pass";
  r.open.back()(false);
  scheduler.advance(Duration(1000));
  EXPECT_EQ(r.runs, 2);
  EXPECT_TRUE(runner.idle());
  EXPECT_EQ(asked, 3);
}

}  // namespace
}  // namespace eni
