#include "agent/kube/watch_decoder.h"

#include "agent/base/json.h"

namespace eni {

Result<WatchEvent> WatchStreamDecoder::decodeLine(std::string_view line) {
  auto parsed = parseJson(line);
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
    auto event = decodeLine(piece);
    if (!event) {
      failed_ = true;
      return fail(event.error());
    }
    emit(std::move(*event));
  }
  return {};
}

}  // namespace eni
