#pragma once

#include <functional>
#include <utility>

namespace eni {

/// Runs blocking work (AWS calls) away from the event loop and hands the result back to it.
/// `work` runs on the executor's thread; `done` then runs on the loop thread.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void run(std::function<void()> work, std::function<void()> done) = 0;
  /// Hands `fn` to the loop thread from inside a job's `work`, without waiting for that job to
  /// end: what the job learns midway (an ENI's MAC) reaches the loop while it still runs.
  /// WorkerPool posts it at once to the loop's queue, so it runs after everything posted before
  /// it and before the job's `done`. The default runs it as the `done` of an empty job: inline
  /// for InlineExecutor, but only after the job in progress for one that queues jobs. Any thread.
  virtual void post(std::function<void()> fn) {
    run([] {}, std::move(fn));
  }
};

/// Runs work and completion at once, on the caller's thread: deterministic unit tests.
class InlineExecutor final : public Executor {
 public:
  void run(std::function<void()> work, std::function<void()> done) override {
    work();
    done();
  }
};

}  // namespace eni
