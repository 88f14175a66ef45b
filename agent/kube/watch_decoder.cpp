#include "agent/kube/watch_decoder.h"

#include <cstdio>
#include <random>
#include <utility>

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
  if (!known_.empty() && known_.front().key == key && known_.front().value == value)
    return known_.front().needle;
  std::string needle = quoteAsApiServer(key);
  needle += ':';
  const std::size_t valueAt = needle.size();
  appendJsonQuoted(needle, value, JsonQuoting::AsGo);
  if (value.size() < kMinBytes) return needle;
  known_.push_front(Known{key, needle, valueAt, value});
  if (known_.size() > kKept) known_.pop_back();
  return needle;
}

std::string KnownAnnotations::quoteAsApiServer(std::string_view value) {
  return jsonQuote(value, JsonQuoting::AsGo);
}

Result<Json::Value> KnownAnnotations::parse(std::string_view line) {
  for (const auto& k : known_) {
    if (line.size() < k.needle.size()) continue;
    const std::size_t at = line.find(k.needle);
    if (at == std::string_view::npos) continue;
    std::string swapped;
    swapped.reserve(line.size() - k.needle.size() + k.valueAt + standInQuoted_.size());
    swapped.append(line.substr(0, at + k.valueAt))
        .append(standInQuoted_)
        .append(line.substr(at + k.needle.size()));
    auto parsed = parseJson(swapped);
    // The stand-in must have landed where the value belongs; else the line is decoded whole.
    Json::Value* annotations = parsed ? annotationsOf(*parsed) : nullptr;
    const Json::Value* shown =
        annotations == nullptr ? nullptr : &std::as_const(*annotations)[k.key];
    if (shown == nullptr || !shown->isString() || shown->asString() != standIn_) break;
    (*annotations)[k.key] = k.value;
    ++reused_;
    return parsed;
  }
  return parseJson(line);
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
