// WorkerPool: at most N jobs at once, each completion on the loop thread.
#include "agent/base/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "agent/base/event_loop.h"

namespace eni {
namespace {

TEST(WorkerPool, RunsAtMostItsThreadsAtOnceAndCompletesOnTheLoop) {
  EventLoop loop;
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0;
  int peak = 0;
  bool open = false;
  int done = 0;
  bool doneOffLoop = false;
  const auto loopThread = std::this_thread::get_id();
  {
    WorkerPool pool(loop, 3);
    for (int i = 0; i < 8; ++i) {
      pool.run(
          [&] {
            std::unique_lock<std::mutex> lock(mutex);
            peak = std::max(peak, ++running);
            changed.notify_all();
            // Held until the test has seen three at once: a pool of three never runs a fourth.
            changed.wait(lock, [&] { return open; });
            --running;
          },
          [&] {
            doneOffLoop = doneOffLoop || std::this_thread::get_id() != loopThread;
            ++done;
          });
    }
    {
      std::unique_lock<std::mutex> lock(mutex);
      ASSERT_TRUE(changed.wait_for(lock, std::chrono::seconds(30), [&] { return running == 3; }));
      open = true;
      changed.notify_all();
    }
    ASSERT_TRUE(loop.runUntil([&] { return done == 8; }, Duration(30000)));
  }
  EXPECT_EQ(peak, 3);
  EXPECT_FALSE(doneOffLoop);
}

}  // namespace
}  // namespace eni
