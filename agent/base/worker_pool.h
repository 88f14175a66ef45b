#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "agent/base/executor.h"

namespace eni {

class EventLoop;

/// `threads` worker threads sharing one FIFO queue: at most `threads` jobs run at once, each on
/// its own thread, and each completion is posted to the loop through its eventfd. For blocking
/// work that waits (an ENI release polls EC2 for seconds) and must neither wait behind nor hold
/// up the AWS worker. The destructor finishes the jobs in progress, drops the rest and joins.
class WorkerPool : public Executor {
 public:
  WorkerPool(EventLoop& loop, std::size_t threads);
  ~WorkerPool() override;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  /// Any thread.
  void run(std::function<void()> work, std::function<void()> done) override;
  /// Any thread: straight to the loop's queue, the one every `done` goes through.
  void post(std::function<void()> fn) override;

 private:
  void main();
  EventLoop& loop_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

/// One worker thread with a FIFO queue (a WorkerPool of one, so its jobs run in order): the AWS
/// worker. The destructor finishes the job in progress, drops the rest and joins.
class WorkerThread final : public WorkerPool {
 public:
  explicit WorkerThread(EventLoop& loop) : WorkerPool(loop, 1) {}
};

}  // namespace eni
