#pragma once

#include <functional>
#include <initializer_list>

#include "agent/base/error.h"

namespace eni {

class EventLoop;

/// Delivers signals through a signalfd on the event loop instead of async handlers. The signals
/// are blocked for the whole process; create it before any other thread starts.
class SignalWatcher {
 public:
  SignalWatcher(EventLoop& loop, std::initializer_list<int> signals,
                std::function<void(int signal)> onSignal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  EventLoop& loop_;
  int fd_ = -1;
  std::function<void(int)> onSignal_;
};

}  // namespace eni
