#include "agent/kube/watch_decoder.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "agent/base/json.h"

namespace eni {
namespace {

Json::Value* annotationsOf(Json::Value& root) {
  Json::Value* at = &root;
  for (const char* field : {"object", "metadata", "annotations"}) {
    if (!at->isObject() || !at->isMember(field)) return nullptr;
    at = &(*at)[field];
  }
  return at->isObject() ? at : nullptr;
}

}  // namespace

std::size_t KnownAnnotations::find(std::string_view line, const Known& k) {
  // The key's member start (`"key":"`), then the whole member compared at once: searching for the
  // whole member costs its length on each try (a string_view's find stops at every quote, glibc's
  // memmem prepares a long needle in full).
  const std::string_view member = k.needle;
  const std::string_view start = member.substr(0, k.valueAt + 1);
  for (std::size_t from = 0; from + member.size() <= line.size();) {
    const void* found = memmem(line.data() + from, line.size() - from, start.data(), start.size());
    if (found == nullptr) return std::string_view::npos;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(found) - line.data());
    if (line.substr(at, member.size()) == member) return at;
    from = at + 1;
  }
  return std::string_view::npos;
}

KnownAnnotations::KnownAnnotations() {
  // Stands in for a known value while its line is parsed, and must be found where the value
  // belongs afterwards: random, so that no one who can write to the object can place it there.
  std::random_device random;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%08x%08x", random(), random());
  standIn_ = std::string("\001eni-agent:") + hex;
  standInQuoted_ = quoteAsApiServer(standIn_);
}

std::string KnownAnnotations::remember(const std::string& key, const std::string& value) {
  auto newest =
      std::find_if(known_.begin(), known_.end(), [&](const Known& k) { return k.key == key; });
  if (newest != known_.end() && newest->value == value) return newest->needle;
  std::string needle = quoteAsApiServer(key);
  needle += ':';
  const std::size_t valueAt = needle.size();
  appendJsonQuoted(needle, value, JsonQuoting::AsGo);
  if (value.size() < kMinBytes) return needle;
  known_.push_front(Known{key, needle, valueAt, value});
  // Each key keeps its own: a small overlay written often must not push out the state it is over.
  std::size_t ofKey = 0;
  for (auto it = known_.begin(); it != known_.end();) {
    if (it->key == key && ++ofKey > kKept)
      it = known_.erase(it);
    else
      ++it;
  }
  if (known_.size() > kMaxKept) known_.pop_back();
  return needle;
}

std::string KnownAnnotations::quoteAsApiServer(std::string_view value) {
  return jsonQuote(value, JsonQuoting::AsGo);
}

Result<Json::Value> KnownAnnotations::parse(std::string_view line) {
  // The newest value of each key that the line carries verbatim, each replaced by the stand-in.
  std::string swapped;
  std::string_view current = line;
  std::vector<const Known*> put;
  for (const auto& k : known_) {
    if (current.size() < k.needle.size()) continue;
    if (std::any_of(put.begin(), put.end(), [&](const Known* p) { return p->key == k.key; }))
      continue;
    const std::size_t at = find(current, k);
    if (at == std::string_view::npos) continue;
    std::string next;
    next.reserve(current.size() - k.needle.size() + k.valueAt + standInQuoted_.size());
    next.append(current.substr(0, at + k.valueAt))
        .append(standInQuoted_)
        .append(current.substr(at + k.needle.size()));
    swapped = std::move(next);
    current = swapped;
    put.push_back(&k);
  }
  if (put.empty()) return parseJson(line);
  auto parsed = parseJson(swapped);
  // Each stand-in must have landed where its value belongs; else the line is decoded whole.
  Json::Value* annotations = parsed ? annotationsOf(*parsed) : nullptr;
  for (const Known* k : put) {
    const Json::Value* shown =
        annotations == nullptr ? nullptr : &std::as_const(*annotations)[k->key];
    if (shown == nullptr || !shown->isString() || shown->asString() != standIn_)
      return parseJson(line);
  }
  for (const Known* k : put) (*annotations)[k->key] = k->value;
  ++reused_;
  return parsed;
}

Result<WatchEvent> WatchStreamDecoder::decodeLine(std::string_view line, KnownAnnotations* known) {
  auto parsed = known == nullptr ? parseJson(line) : known->parse(line);
  if (!parsed) {
    return fail(ErrorCode::Internal, "watch stream: " + parsed.error().message);
  }
  const Json::Value& root = *parsed;
  const std::string type = stringField(root, "type");
  const Json::Value& object = objectField(root, "object");
  if (type.empty() || object.isNull()) {
    return fail(ErrorCode::Internal, "watch stream: an event without type or object");
  }
  WatchEvent event;
  if (type == "ADDED")
    event.type = WatchEventType::Added;
  else if (type == "MODIFIED")
    event.type = WatchEventType::Modified;
  else if (type == "DELETED")
    event.type = WatchEventType::Deleted;
  else if (type == "BOOKMARK")
    event.type = WatchEventType::Bookmark;
  else if (type == "ERROR") {
    const std::int64_t code = intField(object, "code");
    Error error{code == 410 ? ErrorCode::Gone : ErrorCode::Transient,
                "watch ERROR event: " + stringField(object, "message", "(no message)")};
    error.httpStatus = code;
    return fail(std::move(error));
  } else {
    return fail(ErrorCode::Internal, "watch stream: unknown event type \"" + type + "\"");
  }
  // Moved out of the parsed document, not copied: a Node event carries the node-state
  // annotation, tens of KiB.
  event.object.swap((*parsed)["object"]);
  return event;
}

Result<void> WatchStreamDecoder::feed(std::string_view chunk,
                                      const std::function<void(WatchEvent)>& emit) {
  if (failed_) return fail(ErrorCode::Internal, "watch stream: decoder already failed");
  std::size_t start = 0;
  while (start < chunk.size()) {
    const std::size_t newline = chunk.find('\n', start);
    if (newline == std::string_view::npos) {
      // One allocation for a line as long as the last one and some (a large Node comes back at
      // each patch, a little longer each time), not a doubling per chunk with a copy each time.
      if (partial_.empty()) partial_.reserve(std::min(lastLine_ + lastLine_ / 8, kMaxLineBytes));
      partial_.append(chunk.substr(start));
      if (partial_.size() > kMaxLineBytes) {
        failed_ = true;
        std::string().swap(partial_);
        return fail(ErrorCode::Internal, "watch stream: an event longer than 16 MiB");
      }
      break;
    }
    std::string_view piece = chunk.substr(start, newline - start);
    start = newline + 1;
    std::string joined;
    if (!partial_.empty()) {
      joined = std::move(partial_);
      partial_.clear();
      joined.append(piece);
      piece = joined;
    }
    lastLine_ = piece.size();
    if (piece.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank line
    auto event = decodeLine(piece, known_);
    if (!event) {
      failed_ = true;
      return fail(event.error());
    }
    emit(std::move(*event));
  }
  return {};
}

}  // namespace eni
