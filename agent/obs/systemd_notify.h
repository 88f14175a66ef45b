#pragma once

#include <optional>
#include <string_view>

#include "agent/base/clock.h"

namespace eni {

/// The systemd notification protocol (sd_notify) for Type=notify services. Every call is a
/// no-op when $NOTIFY_SOCKET is not set. Loop thread only.
class SystemdNotifier {
 public:
  SystemdNotifier();
  /// READY=1 with STATUS=.
  void ready(std::string_view status);
  void status(std::string_view status);
  void watchdog();
  void stopping(std::string_view status);
  /// Half of $WATCHDOG_USEC when the watchdog is on for this process, else nullopt.
  std::optional<Duration> watchdogInterval() const { return watchdogInterval_; }
  std::uint64_t sent() const { return sent_; }

 private:
  void send(const std::string& text);
  std::optional<Duration> watchdogInterval_;
  std::uint64_t sent_ = 0;
};

}  // namespace eni
