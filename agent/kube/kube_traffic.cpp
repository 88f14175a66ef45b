#include "agent/kube/kube_traffic.h"

namespace eni {

void KubeTraffic::watchEvent(const std::string& resource, WatchEventType type) {
  // Opened and bookmarks carry no object: their bytes count, they are no event about one.
  if (type == WatchEventType::Opened || type == WatchEventType::Bookmark) return;
  ++traffic_[resource].watchEvents;
}

}  // namespace eni
