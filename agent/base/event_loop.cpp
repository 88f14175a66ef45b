#include "agent/base/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace eni {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "eni-agent: fatal: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

}  // namespace

EventLoop::EventLoop() {
  epollFd_ = epoll_create1(EPOLL_CLOEXEC);
  timerFd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  wakeFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epollFd_ < 0 || timerFd_ < 0 || wakeFd_ < 0) die("creating the event loop");
  for (int fd : {timerFd_, wakeFd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
  }
}

EventLoop::~EventLoop() {
  for (int fd : {epollFd_, timerFd_, wakeFd_}) {
    if (fd >= 0) close(fd);
  }
}

Result<void> EventLoop::watchFd(int fd, std::uint32_t events, FdCallback callback) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  const bool known = fdCallbacks_.count(fd) != 0;
  if (epoll_ctl(epollFd_, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
    return fail(ErrorCode::Internal, std::string("epoll_ctl: ") + std::strerror(errno));
  }
  fdCallbacks_[fd] = std::move(callback);
  return {};
}

void EventLoop::unwatchFd(int fd) {
  if (fdCallbacks_.erase(fd) != 0) epoll_ctl(epollFd_, EPOLL_CTL_DEL, fd, nullptr);
}

TimerId EventLoop::runAfter(Duration delay, std::function<void()> fn) {
  const TimerId id = nextTimerId_++;
  const TimePoint deadline = std::chrono::steady_clock::now() + delay;
  timers_.emplace(deadline, Timer{id, std::move(fn)});
  timerDeadlines_[id] = deadline;
  rearmTimerFd();
  return id;
}

void EventLoop::cancel(TimerId id) {
  auto it = timerDeadlines_.find(id);
  if (it == timerDeadlines_.end()) return;
  auto [begin, end] = timers_.equal_range(it->second);
  for (auto t = begin; t != end; ++t) {
    if (t->second.id == id) {
      timers_.erase(t);
      break;
    }
  }
  timerDeadlines_.erase(it);
  rearmTimerFd();
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(postedMutex_);
    posted_.push_back(std::move(fn));
  }
  const std::uint64_t one = 1;
  // A full eventfd counter still wakes the loop, so a failed write loses nothing.
  [[maybe_unused]] auto n = write(wakeFd_, &one, sizeof one);
}

void EventLoop::rearmTimerFd() {
  itimerspec spec{};
  if (!timers_.empty()) {
    auto wait = timers_.begin()->first - std::chrono::steady_clock::now();
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    if (ns < 1) ns = 1;  // zero would disarm the timer
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  }
  timerfd_settime(timerFd_, 0, &spec, nullptr);
}

void EventLoop::runDueTimers() {
  const TimePoint now = std::chrono::steady_clock::now();
  std::vector<TimerId> due;
  for (auto t = timers_.begin(); t != timers_.end() && t->first <= now; ++t) {
    due.push_back(t->second.id);
  }
  // One at a time, each taken out just before it runs: a callback that cancels another due timer
  // (or destroys the Timer that armed it) stops that one from running. Timers armed by these
  // callbacks wait for the next round.
  for (TimerId id : due) {
    auto deadline = timerDeadlines_.find(id);
    if (deadline == timerDeadlines_.end()) continue;  // cancelled by an earlier callback
    auto [begin, end] = timers_.equal_range(deadline->second);
    auto t = std::find_if(begin, end, [id](const auto& entry) { return entry.second.id == id; });
    std::function<void()> fn = std::move(t->second.fn);
    timers_.erase(t);
    timerDeadlines_.erase(deadline);
    fn();
  }
  rearmTimerFd();
}

void EventLoop::drainPosted() {
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = read(wakeFd_, &count, sizeof count);
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> lock(postedMutex_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
}

void EventLoop::runOnce(Duration maxWait) {
  epoll_event events[32];
  const int n = epoll_wait(epollFd_, events, 32, static_cast<int>(maxWait.count()));
  if (n < 0 && errno != EINTR) die("epoll_wait");
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == timerFd_) {
      std::uint64_t expirations = 0;
      [[maybe_unused]] auto r = read(timerFd_, &expirations, sizeof expirations);
      continue;  // timers run below, after fd work, in deadline order
    }
    if (fd == wakeFd_) {
      drainPosted();
      continue;
    }
    auto it = fdCallbacks_.find(fd);
    if (it == fdCallbacks_.end()) continue;  // unwatched by an earlier callback this round
    FdCallback callback = it->second;        // the callback may unwatch itself
    callback(events[i].events);
  }
  runDueTimers();
  ++iterations_;
}

void EventLoop::run() {
  stopping_ = false;
  while (!stopping_) runOnce(Duration(1000));
}

bool EventLoop::runUntil(const std::function<bool()>& done, Duration limit) {
  const TimePoint deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    const auto left =
        std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return done();
    runOnce(std::min(left, Duration(50)));
  }
  return true;
}

void EventLoop::stop() {
  stopping_ = true;
  post([] {});
}

}  // namespace eni
