#include "agent/kube/event_recorder.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "agent/base/json.h"
#include "agent/base/log.h"

namespace eni {
namespace {

constexpr char kSep = '\x1f';
// client-go's EventAggregator message prefix, so that people and tools recognise it.
constexpr const char* kCombinedPrefix = "(combined from similar events): ";

const char* typeName(EventType type) { return type == EventType::Normal ? "Normal" : "Warning"; }

std::string objectKeyOf(const ObjectReference& o) {
  return o.apiVersion + kSep + o.kind + kSep + o.ns + kSep + o.name + kSep + o.uid;
}

}  // namespace

ObjectReference ObjectReference::pod(const ObjectMeta& meta) {
  return {"v1", "Pod", meta.ns, meta.name, meta.uid};
}

ObjectReference ObjectReference::nodeEni(const ObjectMeta& meta) {
  return {"networking.k8s.aws/v1alpha1", "NodeENI", "", meta.name, meta.uid};
}

EventRecorder::EventRecorder(KubeApi& kube, const Clock& clock, EventRecorderOptions options)
    : kube_(kube),
      clock_(clock),
      options_(std::move(options)),
      events_(options_.maxKeys),
      similar_(options_.maxKeys),
      buckets_(options_.maxKeys) {}

void EventRecorder::record(const ObjectReference& involved, EventType type,
                           const std::string& reason, const std::string& message) {
  const TimePoint now = clock_.now();
  const std::string objectKey = objectKeyOf(involved);
  const std::string similarKey = objectKey + kSep + typeName(type) + kSep + reason;
  const bool combined = combine(similarKey, message, now);
  Occurrence occurrence{involved, type, reason, combined ? kCombinedPrefix + message : message,
                        similarKey + kSep + (combined ? std::string("\x1e") : message)};
  Tracked* tracked = events_.find(occurrence.key);
  if (tracked != nullptr && tracked->writing) {
    ++tracked->count;
    tracked->message = occurrence.message;
    ++stats_.absorbed;
    return;
  }
  const bool repeat =
      tracked != nullptr && !tracked->name.empty() && now - tracked->lastWrite <= options_.window;
  if (!takeToken(objectKey, now)) {
    ++stats_.throttled;
    if (repeat) {
      ++tracked->count;
      tracked->message = occurrence.message;
    }
    return;
  }
  if (repeat)
    update(occurrence, *tracked);
  else
    create(occurrence);
}

bool EventRecorder::combine(const std::string& similarKey, const std::string& message,
                            TimePoint now) {
  Similar* similar = similar_.find(similarKey);
  if (similar == nullptr || now - similar->last > options_.window)
    similar = &similar_.put(similarKey, Similar{});
  similar->last = now;
  if (similar->combining) return true;
  const std::size_t hash = std::hash<std::string>{}(message);
  if (similar->messages.count(hash) != 0) return false;
  if (similar->messages.size() + 1 >= options_.similarMessages) {
    similar->combining = true;
    similar->messages.clear();
    return true;
  }
  similar->messages.insert(hash);
  return false;
}

bool EventRecorder::takeToken(const std::string& objectKey, TimePoint now) {
  if (options_.refill <= Duration::zero()) return true;  // no limit
  // Credit in time units (one write costs `refill`), so that refills add up exactly.
  const Duration full = options_.refill * std::max(options_.burst, 0);
  Bucket* bucket = buckets_.find(objectKey);
  if (bucket == nullptr) bucket = &buckets_.put(objectKey, Bucket{full, now});
  const auto elapsed = std::chrono::duration_cast<Duration>(now - bucket->at);
  bucket->credit = std::min(full, bucket->credit + std::max(elapsed, Duration::zero()));
  bucket->at = now;
  if (bucket->credit < options_.refill) return false;
  bucket->credit -= options_.refill;
  return true;
}

Json::Value EventRecorder::eventBody(const Occurrence& o, const std::string& ns) const {
  const std::string now = formatTimestamp(clock_.wallSeconds());
  Json::Value event;
  event["metadata"]["generateName"] = o.involved.name + ".";
  event["metadata"]["namespace"] = ns;
  Json::Value& involved = event["involvedObject"];
  involved["kind"] = o.involved.kind;
  involved["apiVersion"] = o.involved.apiVersion;
  involved["name"] = o.involved.name;
  if (!o.involved.ns.empty()) involved["namespace"] = o.involved.ns;
  involved["uid"] = o.involved.uid;
  event["reason"] = o.reason;
  event["message"] = o.message;
  event["type"] = typeName(o.type);
  event["source"]["component"] = options_.component;
  event["source"]["host"] = options_.nodeName;
  event["reportingComponent"] = options_.component;
  event["reportingInstance"] = options_.nodeName;
  event["firstTimestamp"] = now;
  event["lastTimestamp"] = now;
  event["count"] = 1;
  return event;
}

void EventRecorder::create(const Occurrence& occurrence) {
  // A cluster-scoped object's Events live in "default", as kubectl describe looks for them.
  const std::string ns = occurrence.involved.ns.empty() ? "default" : occurrence.involved.ns;
  Tracked tracked;
  tracked.serial = ++serial_;
  tracked.ns = ns;
  tracked.message = occurrence.message;
  tracked.writing = true;
  const std::uint64_t serial = tracked.serial;
  events_.put(occurrence.key, std::move(tracked));
  ++inFlight_;
  kube_.create(ObjectRef{ResourceKind::events(), ns, "", ""}, eventBody(occurrence, ns),
               [this, key = occurrence.key, serial](Result<Json::Value> answer) {
                 --inFlight_;
                 onCreated(key, serial, std::move(answer));
               });
}

void EventRecorder::onCreated(const std::string& key, std::uint64_t serial,
                              Result<Json::Value> answer) {
  Tracked* tracked = events_.find(key);
  const bool current = tracked != nullptr && tracked->serial == serial;
  const std::string name =
      answer ? stringField(objectField(*answer, "metadata"), "name") : std::string();
  if (!answer || name.empty()) {
    ++stats_.failed;
    logDebug("event not recorded",
             {{"error", answer ? "no name in the answer" : answer.error().describe()}});
    if (current) events_.erase(key);
    return;
  }
  ++stats_.created;
  if (!current) return;
  tracked->writing = false;
  tracked->name = name;
  tracked->lastWrite = clock_.now();
}

void EventRecorder::update(const Occurrence& occurrence, Tracked& tracked) {
  ++tracked.count;
  tracked.message = occurrence.message;
  tracked.writing = true;
  Json::Value patch;
  patch["count"] = static_cast<Json::Int64>(tracked.count);
  patch["lastTimestamp"] = formatTimestamp(clock_.wallSeconds());
  // A combined Event shows the latest of its messages; another keeps its one message.
  if (occurrence.message.rfind(kCombinedPrefix, 0) == 0) patch["message"] = occurrence.message;
  ++inFlight_;
  kube_.patch(ObjectRef{ResourceKind::events(), tracked.ns, tracked.name, ""}, PatchType::Strategic,
              patch, {}, [this, occurrence, serial = tracked.serial](Result<Json::Value> answer) {
                --inFlight_;
                onUpdated(occurrence, serial, std::move(answer));
              });
}

void EventRecorder::onUpdated(const Occurrence& occurrence, std::uint64_t serial,
                              Result<Json::Value> answer) {
  Tracked* tracked = events_.find(occurrence.key);
  const bool current = tracked != nullptr && tracked->serial == serial;
  if (answer) {
    ++stats_.updated;
    if (!current) return;
    tracked->writing = false;
    tracked->lastWrite = clock_.now();
    return;
  }
  ++stats_.failed;
  logDebug("event not updated", {{"error", answer.error().describe()}});
  if (!current) return;
  tracked->writing = false;
  // The Event expired (the API server keeps them an hour) or was deleted: a new one tells of
  // this occurrence. The token was paid for by this record already.
  if (answer.error().code == ErrorCode::NotFound) create(occurrence);
}

}  // namespace eni
