#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace eni {

class EventLoop;

/// Runs blocking work (AWS calls) away from the event loop and hands the result back to it.
/// `work` runs on the executor's thread; `done` then runs on the loop thread.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void run(std::function<void()> work, std::function<void()> done) = 0;
};

/// One worker thread with a FIFO queue; completions are posted to the loop through its eventfd.
/// The destructor finishes the job in progress, drops the rest and joins.
class WorkerThread final : public Executor {
 public:
  explicit WorkerThread(EventLoop& loop);
  ~WorkerThread() override;
  void run(std::function<void()> work, std::function<void()> done) override;

 private:
  void main();
  EventLoop& loop_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> queue_;
  bool stopping_ = false;
  std::thread thread_;
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
