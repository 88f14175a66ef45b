#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "agent/base/clock.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/lru_map.h"
#include "agent/kube/objects.h"

namespace eni {

/// The object an Event is about (core/v1 ObjectReference).
struct ObjectReference {
  std::string apiVersion;  // "v1", "networking.k8s.aws/v1alpha1"
  std::string kind;        // "Pod", "NodeENI"
  std::string ns;          // empty for cluster-scoped kinds
  std::string name;
  std::string uid;

  static ObjectReference pod(const ObjectMeta& meta);
  static ObjectReference nodeEni(const ObjectMeta& meta);
};

enum class EventType { Normal, Warning };

struct EventRecorderOptions {
  std::string component = "eni-agent";  // source.component and reportingComponent
  std::string nodeName;                 // source.host and reportingInstance
  /// A repeat (same object, type, reason and message) within this time of its Event's last write
  /// updates that Event's count and lastTimestamp; a later one creates a new Event.
  Duration window = std::chrono::minutes(10);
  /// Events of one object, type and reason whose messages differ (an error text with a request
  /// ID, say): once this many distinct messages come within `window` of one another, they and
  /// every later one go into a single "(combined from similar events): <latest>" Event, as
  /// client-go's EventAggregator does, until such events stop for a window.
  std::size_t similarMessages = 10;
  /// Writes (creates and updates alike) per involved object: a token bucket of `burst`, refilled
  /// by one every `refill` (client-go's spam filter: 25, then one per 5 minutes). A pod that
  /// fails on every pass gets 25 writes, then 12 an hour; no loop writes once per pass.
  int burst = 25;
  Duration refill = std::chrono::minutes(5);  // zero or less: no limit
  /// Each of the recorder's three caches (Events, similar messages, buckets) holds at most this
  /// many keys and forgets the least recently used: the memory stays bounded whatever the churn.
  std::size_t maxKeys = 4096;
};

struct EventRecorderStats {
  std::uint64_t created = 0;    // Events created
  std::uint64_t updated = 0;    // repeats written into an existing Event (count, lastTimestamp)
  std::uint64_t absorbed = 0;   // repeats while their Event's write was in flight: counted, unsent
  std::uint64_t throttled = 0;  // records over the object's rate: unsent (a repeat is counted)
  std::uint64_t failed = 0;     // writes the API server refused or that did not reach it
};

/// Records Events about the agent's objects the way client-go's EventCorrelator does: repeats
/// are aggregated into one Event (count, lastTimestamp) instead of one Event each, similar
/// messages are combined, and the writes per object are rate limited, so that no loop can emit
/// an Event per pass and the API server's load stays bounded per object. An Event goes into the
/// involved object's namespace, or "default" for a cluster-scoped one (a NodeENI). Events are
/// best effort: a failed write is counted in stats(), logged at debug and otherwise dropped;
/// record() never fails. A repeat counted while unsent (in flight, throttled) is carried by the
/// Event's next write. Loop thread only; must outlive the KubeApi calls it starts (inFlight()).
class EventRecorder {
 public:
  EventRecorder(KubeApi& kube, const Clock& clock, EventRecorderOptions options);
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  void record(const ObjectReference& involved, EventType type, const std::string& reason,
              const std::string& message);

  const EventRecorderStats& stats() const { return stats_; }
  /// Writes sent and not yet answered: part of a caller's idle().
  std::size_t inFlight() const { return inFlight_; }
  /// Events the recorder remembers (at most options.maxKeys).
  std::size_t trackedEvents() const { return events_.size(); }

 private:
  struct Tracked {
    std::uint64_t serial = 0;  // tells a write's answer whether its entry is still this one
    std::string ns;
    std::string name;  // empty until the create is answered
    std::int64_t count = 1;
    std::string message;
    TimePoint lastWrite{};
    bool writing = false;
  };
  struct Similar {
    TimePoint last{};
    std::set<std::size_t> messages;  // hashes of the distinct messages seen
    bool combining = false;
  };
  struct Bucket {
    Duration credit{};  // one write costs options.refill
    TimePoint at{};
  };
  struct Occurrence {
    ObjectReference involved;
    EventType type;
    std::string reason;
    std::string message;  // as written: "(combined from similar events): ..." when combined
    std::string key;
  };

  bool combine(const std::string& similarKey, const std::string& message, TimePoint now);
  bool takeToken(const std::string& objectKey, TimePoint now);
  void create(const Occurrence& occurrence);
  void update(const Occurrence& occurrence, Tracked& tracked);
  void onCreated(const std::string& key, std::uint64_t serial, Result<Json::Value> answer);
  void onUpdated(const Occurrence& occurrence, std::uint64_t serial, Result<Json::Value> answer);
  Json::Value eventBody(const Occurrence& occurrence, const std::string& ns) const;

  KubeApi& kube_;
  const Clock& clock_;
  EventRecorderOptions options_;
  LruMap<Tracked> events_;
  LruMap<Similar> similar_;
  LruMap<Bucket> buckets_;
  EventRecorderStats stats_;
  std::size_t inFlight_ = 0;
  std::uint64_t serial_ = 0;
};

}  // namespace eni
