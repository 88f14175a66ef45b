#include "agent/kube/watch_decoder.h"

#include <array>
#include <cstdio>
#include <random>
#include <utility>

#include "agent/base/json.h"

namespace eni {
namespace {

// What Go's encoding/json writes for byte `i` of `text` (and how many bytes it stands for):
// "" when the byte goes out as it is.
std::string_view goEscape(std::string_view text, std::size_t i, std::size_t& consumed,
                          std::array<char, 8>& buffer) {
  consumed = 1;
  const auto c = static_cast<unsigned char>(text[i]);
  switch (c) {
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    case '\n':
      return "\\n";
    case '\r':
      return "\\r";
    case '\t':
      return "\\t";
    case '\b':
      return "\\b";
    case '\f':
      return "\\f";
    case '<':
      return "\\u003c";
    case '>':
      return "\\u003e";
    case '&':
      return "\\u0026";
    default:
      break;
  }
  if (c < 0x20) {
    std::snprintf(buffer.data(), buffer.size(), "\\u%04x", c);
    return {buffer.data(), 6};
  }
  // U+2028 and U+2029 (E2 80 A8/A9), which JavaScript takes for line ends.
  if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
      (static_cast<unsigned char>(text[i + 2]) == 0xA8 ||
       static_cast<unsigned char>(text[i + 2]) == 0xA9)) {
    consumed = 3;
    return static_cast<unsigned char>(text[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
  }
  return {};
}

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

void KnownAnnotations::remember(const std::string& key, const std::string& value) {
  if (value.size() < kMinBytes) return;
  if (!known_.empty() && known_.front().key == key && known_.front().value == value) return;
  std::string prefix = quoteAsApiServer(key) + ":";
  const std::size_t valueAt = prefix.size();
  known_.push_front(Known{key, prefix + quoteAsApiServer(value), valueAt, value});
  if (known_.size() > kKept) known_.pop_back();
}

std::string KnownAnnotations::quoteAsApiServer(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out += '"';
  std::array<char, 8> buffer{};
  for (std::size_t i = 0; i < value.size();) {
    std::size_t consumed = 1;
    const std::string_view escaped = goEscape(value, i, consumed, buffer);
    if (escaped.empty())
      out += value[i];
    else
      out += escaped;
    i += consumed;
  }
  out += '"';
  return out;
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
