#include "ec2/rate_limiter.h"

#include <gtest/gtest.h>

#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

/// Sleeping moves the manual clock, so the bucket refills exactly as in real time.
class ClockSleeper final : public Sleeper {
 public:
  explicit ClockSleeper(testing::ManualScheduler& clock) : clock_(clock) {}
  void sleepFor(Duration d) override {
    ++sleeps;
    total += d;
    clock_.advance(d);
  }
  int sleeps = 0;
  Duration total{0};

 private:
  testing::ManualScheduler& clock_;
};

TEST(RateLimiter, BurstThenTheConfiguredRate) {
  testing::ManualScheduler clock;
  ClockSleeper sleeper(clock);
  RateLimiter limiter(5, 10, clock, sleeper);
  for (int i = 0; i < 10; ++i) limiter.acquire();
  EXPECT_EQ(sleeper.sleeps, 0) << "a full bucket serves the burst at once";
  for (int i = 0; i < 10; ++i) limiter.acquire();
  EXPECT_EQ(sleeper.sleeps, 10);
  EXPECT_EQ(limiter.waits(), 10u);
  // 10 more tokens at 5/s take two seconds of waiting in all.
  EXPECT_NEAR(static_cast<double>(sleeper.total.count()), 2000, 10);
}

// What the tagger asks before a pass: how long until its calls would go through without waiting.
TEST(RateLimiter, SaysHowLongUntilTokensAreThere) {
  testing::ManualScheduler clock;
  ClockSleeper sleeper(clock);
  RateLimiter limiter(5, 10, clock, sleeper);
  EXPECT_EQ(limiter.untilAvailable(2).count(), 0) << "a full bucket";
  for (int i = 0; i < 9; ++i) limiter.acquire();
  EXPECT_EQ(limiter.untilAvailable(1).count(), 0);
  EXPECT_EQ(limiter.untilAvailable(2).count(), 200) << "one token, 5/s";
  clock.advance(Duration(100));
  EXPECT_EQ(limiter.untilAvailable(2).count(), 100);
  limiter.acquire();
  limiter.acquire();  // waits 100 ms for its token
  EXPECT_EQ(limiter.untilAvailable(2).count(), 400);
  limiter.onThrottled();  // half the rate: twice as long
  EXPECT_EQ(limiter.untilAvailable(2).count(), 800);
  EXPECT_EQ(limiter.untilAvailable(50).count(), 4000) << "never more than the bucket holds";
  EXPECT_EQ(sleeper.sleeps, 1) << "asking takes nothing";
}

TEST(RateLimiter, ThrottlingHalvesTheRateAndSuccessWinsItBack) {
  testing::ManualScheduler clock;
  ClockSleeper sleeper(clock);
  RateLimiter limiter(10, 1, clock, sleeper);
  limiter.onThrottled();
  EXPECT_DOUBLE_EQ(limiter.currentRate(), 5);
  for (int i = 0; i < 10; ++i) limiter.onThrottled();
  EXPECT_DOUBLE_EQ(limiter.currentRate(), 1) << "never below a tenth of the configured rate";
  int successes = 0;
  while (limiter.currentRate() < 10 && successes < 1000) {
    limiter.onSuccess();
    ++successes;
  }
  EXPECT_DOUBLE_EQ(limiter.currentRate(), 10);
  EXPECT_EQ(successes, 18) << "recovers 5% of the configured rate per success";
  limiter.onSuccess();
  EXPECT_DOUBLE_EQ(limiter.currentRate(), 10) << "never above the configured rate";
}

TEST(RateLimiter, SlowerRateMeansLongerWaits) {
  testing::ManualScheduler clock;
  ClockSleeper sleeper(clock);
  RateLimiter limiter(4, 1, clock, sleeper);
  limiter.acquire();
  limiter.acquire();
  const Duration atFullRate = sleeper.total;
  limiter.onThrottled();  // 2/s now
  limiter.acquire();
  EXPECT_GT((sleeper.total - atFullRate).count(), atFullRate.count());
}

}  // namespace
}  // namespace eni
