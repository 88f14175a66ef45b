#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/histogram.h"
#include "netlink/link_manager.h"

namespace eni {

/// Each managed link's explicit state, recomputed from the kernel's view after every event.
enum class LinkState { Pending, Configuring, Configured, Failed, Gone };
std::string_view toString(LinkState state);

struct ManagedLink {
  std::string mac;
  std::uint32_t mtu = 0;  // 0: leave the MTU alone
  LinkState state = LinkState::Pending;
  int ifindex = 0;
  std::string name;
  std::string error;      // why it is Failed
  TimePoint firstSeen{};  // the event that announced it, for the event-to-up latency
};

/// A link wanted from now on: its MAC, and the MTU to give it (0 to leave it). Called on a worker
/// thread, which hands it to the loop thread (Executor::post) for LinkReconciler::manage().
using OnLinkWanted = std::function<void(const std::string& mac, std::uint32_t mtu)>;

/// Brings managed interfaces up with their MTU, matched by MAC (never by name or device index),
/// in the handler of the event that announces them; the next event verifies. Links it does not
/// manage are never touched. Level-triggered: the same event twice does nothing new.
/// Loop thread only.
class LinkReconciler {
 public:
  LinkReconciler(LinkManager& links, const Clock& clock) : links_(links), clock_(clock) {}

  /// Wants the link with `mac` up, with `mtu` (0 to leave it).
  void manage(const std::string& mac, std::uint32_t mtu);
  void unmanage(const std::string& mac);
  void onEvent(const LinkEvent& event);

  const std::map<std::string, ManagedLink>& links() const { return managed_; }
  /// Runs after any managed link's state or name changed.
  void setOnChange(std::function<void()> onChange) { onChange_ = std::move(onChange); }
  /// Event-handler runs that sent a change, and the requests sent: one per run, with the MTU, up
  /// or both.
  std::uint64_t configureRuns() const { return configureRuns_; }
  std::uint64_t changesSent() const { return changesSent_; }
  /// Link event -> verified up, per configured link.
  const std::vector<Duration>& latencies() const { return latencies_; }  // the last 1024
  const Histogram& latencyHistogram() const { return histogram_; }

 private:
  void handle(const LinkEvent& event, const std::string& key);
  void reconcile(ManagedLink& link, const LinkInfo& info);
  static void enterFailed(ManagedLink& link, const std::string& why);

  LinkManager& links_;
  const Clock& clock_;
  std::map<std::string, ManagedLink> managed_;  // by MAC
  std::map<std::string, LinkInfo> seen_;        // by MAC: the kernel's last word
  std::uint64_t configureRuns_ = 0;
  std::uint64_t changesSent_ = 0;
  std::vector<Duration> latencies_;
  Histogram histogram_;
  std::function<void()> onChange_;
};

}  // namespace eni
