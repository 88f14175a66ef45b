#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "agent/kube/kube_api.h"

namespace eni {

/// What the API server sent about one resource (ResourceKind::plural).
struct ResourceTraffic {
  std::uint64_t watchBytes = 0;   // every byte of its watch streams, bookmarks included
  std::uint64_t listBytes = 0;    // the bodies of its list pages (relists, remaining() checks)
  std::uint64_t watchEvents = 0;  // Added, Modified and Deleted events (not bookmarks)

  bool operator==(const ResourceTraffic&) const = default;
};

/// Counts the bytes and events a KubeApi client received, per resource, for
/// eni_agent_kube_watch_bytes_total and its siblings: a node's agent should hear about its own
/// node only, so these stay flat while other nodes change. Loop thread only.
class KubeTraffic {
 public:
  void watchChunk(const std::string& resource, std::size_t bytes) {
    traffic_[resource].watchBytes += bytes;
  }
  void watchEvent(const std::string& resource, WatchEventType type);
  void listPage(const std::string& resource, std::size_t bytes) {
    traffic_[resource].listBytes += bytes;
  }
  const std::map<std::string, ResourceTraffic>& byResource() const { return traffic_; }

 private:
  std::map<std::string, ResourceTraffic> traffic_;
};

}  // namespace eni
