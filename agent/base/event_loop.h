#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/error.h"

namespace eni {

/// The single thread that owns epoll: fds (curl sockets, netlink, signalfd), timers on one
/// timerfd, and an eventfd through which other threads post work. Not copyable.
/// Everything but post() and stop() must be called from the loop thread.
class EventLoop final : public Scheduler {
 public:
  using FdCallback = std::function<void(std::uint32_t epollEvents)>;

  EventLoop();
  ~EventLoop() override;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Registers or updates interest in `fd` (EPOLLIN/EPOLLOUT). The loop never closes `fd`.
  [[nodiscard]] Result<void> watchFd(int fd, std::uint32_t events, FdCallback callback);
  void unwatchFd(int fd);

  TimerId runAfter(Duration delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;

  /// Thread-safe: queues `fn` to run on the loop thread and wakes the loop.
  void post(std::function<void()> fn);

  /// Waits at most `maxWait` for fds or timers and runs what is ready.
  void runOnce(Duration maxWait);
  /// Runs until stop() is called.
  void run();
  /// Runs until `done()` is true or `limit` has passed; returns done(). For tests and CLIs.
  bool runUntil(const std::function<bool()>& done, Duration limit);
  /// Thread-safe: makes run() return after the current iteration.
  void stop();

  /// Number of completed iterations; /healthz uses it to see that the loop turns.
  std::uint64_t iterations() const { return iterations_.load(); }

 private:
  void rearmTimerFd();
  void runDueTimers();
  void drainPosted();

  int epollFd_ = -1;
  int timerFd_ = -1;
  int wakeFd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> iterations_{0};
  std::unordered_map<int, FdCallback> fdCallbacks_;
  struct Timer {
    TimerId id;
    std::function<void()> fn;
  };
  std::multimap<TimePoint, Timer> timers_;
  std::unordered_map<TimerId, TimePoint> timerDeadlines_;
  TimerId nextTimerId_ = 1;
  std::mutex postedMutex_;
  std::vector<std::function<void()>> posted_;
};

}  // namespace eni
