#include "agent/base/pass_runner.h"

#include <memory>
#include <utility>

namespace eni {

PassRunner::PassRunner(Scheduler& scheduler, Options options, Pass pass)
    : options_(std::move(options)), pass_(std::move(pass)), timer_(scheduler, [this] { run(); }) {}

void PassRunner::start() {
  started_ = true;
  if (dirty_ && !running_) timer_.enableIfDisabled(options_.coalesce);
}

void PassRunner::markDirty() {
  dirty_ = true;
  // The window opens at the first mark, also during a pass: marks that waited for the pass in
  // progress have coalesced by its end and need not wait another window.
  if (started_) timer_.enableIfDisabled(options_.coalesce);
}

void PassRunner::markDue() {
  dirty_ = true;
  // A window, a hold-off or a retry pending: run() now starts the pass or waits for the hold-off
  // again; during a pass it does nothing and finished() goes on.
  if (started_) timer_.enable(Duration(0));
}

void PassRunner::runAfter(Duration delay) {
  if (running_) return;  // the pass in progress decides what comes next
  if (!timer_.enabled()) timer_.enable(delay);
}

void PassRunner::run() {
  if (running_) return;  // a window that ended during a pass: finished() goes on
  if (options_.holdOff) {
    // Its calls would wait for the rate limit one by one: the pass waits once, and what is
    // marked meanwhile joins it.
    if (const Duration wait = options_.holdOff(); wait.count() > 0) return timer_.enable(wait);
  }
  running_ = true;
  dirty_ = false;
  ++passes_;
  // `done` may be called at once (a pass with nothing to do) or long after, never twice.
  auto called = std::make_shared<bool>(false);
  pass_([this, called](bool retry) {
    if (std::exchange(*called, true)) return;
    finished(retry);
  });
}

void PassRunner::finished(bool retry) {
  running_ = false;
  // Marks made during the pass: at once if their window is over, else when it is.
  if (dirty_)
    timer_.enableIfDisabled(Duration(0));
  else if (retry)
    timer_.enableIfDisabled(options_.retry);
}

}  // namespace eni
