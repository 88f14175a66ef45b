#pragma once

#include <functional>

namespace eni {

/// Runs blocking work (AWS calls) away from the event loop and hands the result back to it.
/// `work` runs on the executor's thread; `done` then runs on the loop thread.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void run(std::function<void()> work, std::function<void()> done) = 0;
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
