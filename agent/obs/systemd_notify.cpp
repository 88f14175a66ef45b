#include "agent/obs/systemd_notify.h"

#include <string>

#include <systemd/sd-daemon.h>

namespace eni {
namespace {

/// STATUS= is one line.
std::string oneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdogInterval_ = std::chrono::duration_cast<Duration>(std::chrono::microseconds(usec / 2));
    if (watchdogInterval_->count() < 1) watchdogInterval_ = Duration(1);
  }
}

void SystemdNotifier::send(const std::string& text) {
  if (sd_notify(0, text.c_str()) > 0) ++sent_;
}

void SystemdNotifier::ready(std::string_view status) { send("READY=1\nSTATUS=" + oneLine(status)); }

void SystemdNotifier::status(std::string_view status) { send("STATUS=" + oneLine(status)); }

void SystemdNotifier::watchdog() { send("WATCHDOG=1"); }

void SystemdNotifier::stopping(std::string_view status) {
  send("STOPPING=1\nSTATUS=" + oneLine(status));
}

}  // namespace eni
