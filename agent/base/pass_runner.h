#pragma once

#include <cstdint>
#include <functional>

#include "agent/base/clock.h"
#include "agent/base/timer.h"

namespace eni {

/// The pass machinery every reconciler shares: events only mark it dirty; marks within the
/// coalescing window (from the first mark) share one pass; one pass runs at a time, and marks
/// during a pass start the next one when it ends, or when their window does if that is later; a
/// pass that asks for it runs again after the retry delay; a pass due while Options::holdOff says
/// to wait starts when it says. The pass is
/// asynchronous: it receives a `done` to call exactly once, with whether to retry. Nothing runs
/// before start(). Loop thread only.
class PassRunner {
 public:
  struct Options {
    Duration coalesce{20};
    Duration retry{5000};
    // How long a pass due now should wait for what it spends (the EC2 client's rate limit): it
    // starts then instead, with the marks made meanwhile. None when empty.
    std::function<Duration()> holdOff{};
  };
  using Done = std::function<void(bool retry)>;
  using Pass = std::function<void(Done done)>;

  PassRunner(Scheduler& scheduler, Options options, Pass pass);
  PassRunner(const PassRunner&) = delete;
  PassRunner& operator=(const PassRunner&) = delete;

  /// Passes may run from now on; marks made before are kept.
  void start();
  /// A pass after the coalescing window (or after the running one ends, if that is later).
  void markDirty();
  /// For marks that have waited their window already (work that waited for something else): a
  /// pass at once, or when the running one ends.
  void markDue();
  /// A pass after `delay` unless one is already due (or running); for work that waits on
  /// something else (a write-ahead, a backoff).
  void runAfter(Duration delay);
  /// Started, and no pass running, due or marked.
  bool idle() const { return started_ && !running_ && !dirty_ && !timer_.enabled(); }
  bool running() const { return running_; }
  std::uint64_t passes() const { return passes_; }

 private:
  void run();
  void finished(bool retry);

  Options options_;
  Pass pass_;
  Timer timer_;
  bool started_ = false;
  bool running_ = false;
  bool dirty_ = false;
  std::uint64_t passes_ = 0;
};

}  // namespace eni
