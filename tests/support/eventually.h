#pragma once

#include <gtest/gtest.h>

#include <functional>

#include "agent/base/clock.h"

namespace eni::testing {

/// Polls `done` every `every` until it holds, giving up at the first look after `limit` has
/// passed; returns whether it held, and in `polls` how many times it looked. The limit bounds a
/// failure: it is not a timing assertion. Sleeps on the calling thread; no event loop turns.
bool pollUntil(const std::function<bool()>& done, Duration limit, Duration every,
               int* polls = nullptr);

/// pollUntil for ASSERT_TRUE/EXPECT_TRUE: a failure says how long it waited and how often it
/// looked. Say what was awaited with <<, e.g.
///   ASSERT_TRUE(eventually([&] { return enforced(); })) << "the policy was never enforced";
inline ::testing::AssertionResult eventually(const std::function<bool()>& done,
                                             Duration limit = Duration(30000),
                                             Duration every = Duration(100)) {
  int polls = 0;
  if (pollUntil(done, limit, every, &polls)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "still not true after " << limit.count() << " ms ("
                                       << polls << " polls, every " << every.count() << " ms)";
}

}  // namespace eni::testing
