#include "agent/base/executor.h"

#include "agent/base/event_loop.h"

namespace eni {

WorkerThread::WorkerThread(EventLoop& loop) : loop_(loop), thread_([this] { main(); }) {}

WorkerThread::~WorkerThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

void WorkerThread::run(std::function<void()> work, std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back(std::move(work), std::move(done));
  }
  wake_.notify_one();
}

void WorkerThread::main() {
  while (true) {
    std::pair<std::function<void()>, std::function<void()>> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.first();
    loop_.post(std::move(job.second));
  }
}

}  // namespace eni
