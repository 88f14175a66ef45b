#include "agent/base/worker_pool.h"

#include "agent/base/event_loop.h"

namespace eni {

WorkerPool::WorkerPool(EventLoop& loop, std::size_t threads) : loop_(loop) {
  if (threads == 0) threads = 1;
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { main(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::run(std::function<void()> work, std::function<void()> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back(std::move(work), std::move(done));
  }
  wake_.notify_one();
}

void WorkerPool::post(std::function<void()> fn) { loop_.post(std::move(fn)); }

void WorkerPool::main() {
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
