#include "agent/eni/link_reconciler.h"

#include <algorithm>
#include <cctype>

#include "agent/base/strings.h"

namespace eni {

std::string_view toString(LinkState state) {
  switch (state) {
    case LinkState::Pending:
      return "Pending";
    case LinkState::Configuring:
      return "Configuring";
    case LinkState::Configured:
      return "Configured";
    case LinkState::Failed:
      return "Failed";
    case LinkState::Gone:
      return "Gone";
  }
  return "Pending";
}

void LinkReconciler::manage(const std::string& mac, std::uint32_t mtu) {
  const std::string key = lower(mac);
  auto& link = managed_[key];
  link.mac = key;
  if (link.mtu != mtu && link.state == LinkState::Configured) link.state = LinkState::Pending;
  link.mtu = mtu;
  if (auto seen = seen_.find(key); seen != seen_.end()) reconcile(link, seen->second);
}

void LinkReconciler::unmanage(const std::string& mac) { managed_.erase(lower(mac)); }

void LinkReconciler::onEvent(const LinkEvent& event) {
  const std::string key = lower(event.link.mac);
  if (key.empty()) return;
  auto before = managed_.find(key);
  const auto wasState = before == managed_.end() ? LinkState::Pending : before->second.state;
  const std::string wasName = before == managed_.end() ? "" : before->second.name;
  handle(event, key);
  auto after = managed_.find(key);
  if (onChange_ && after != managed_.end() &&
      (after->second.state != wasState || after->second.name != wasName)) {
    onChange_();
  }
}

void LinkReconciler::handle(const LinkEvent& event, const std::string& key) {
  if (event.type == LinkEventType::Deleted) {
    seen_.erase(key);
    if (auto it = managed_.find(key); it != managed_.end()) {
      it->second.state = LinkState::Gone;
      it->second.ifindex = 0;
    }
    return;
  }
  seen_[key] = event.link;
  auto it = managed_.find(key);
  if (it == managed_.end()) return;  // not ours: never touched
  reconcile(it->second, event.link);
}

void LinkReconciler::enterFailed(ManagedLink& link, const std::string& why) {
  link.state = LinkState::Failed;
  link.error = why;
}

void LinkReconciler::reconcile(ManagedLink& link, const LinkInfo& info) {
  if (link.ifindex != info.ifindex || link.state == LinkState::Gone) {
    link.firstSeen = clock_.now();  // a new link, or the same MAC back after a delete
    link.state = LinkState::Pending;
  }
  link.ifindex = info.ifindex;
  link.name = info.name;
  const bool mtuWrong = link.mtu != 0 && info.mtu != link.mtu;
  const bool down = !info.adminUp();
  if (!mtuWrong && !down) {
    if (link.state != LinkState::Configured) {
      link.state = LinkState::Configured;
      link.error.clear();
      const auto latency = std::chrono::duration_cast<Duration>(clock_.now() - link.firstSeen);
      if (latencies_.size() == 1024) latencies_.erase(latencies_.begin());
      latencies_.push_back(latency);
      histogram_.observe(std::chrono::duration<double>(latency).count());
    }
    return;
  }
  if (link.state == LinkState::Configuring)
    return;  // the next event verifies (or shows more to do)
  ++configureRuns_;
  link.state = LinkState::Configuring;
  // One request for both: each is a synchronous kernel round trip on the loop thread.
  ++changesSent_;
  if (auto r = links_.configure(info.ifindex, mtuWrong ? link.mtu : 0, down); !r)
    return enterFailed(link, r.error().message);
}

}  // namespace eni
