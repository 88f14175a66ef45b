#include "agent/base/json.h"

#include <array>
#include <cstdio>
#include <memory>
#include <vector>

#include <json/reader.h>
#include <json/writer.h>

namespace eni {
namespace {
const Json::Value kNull;

// jsoncpp skips comments between members even with allowComments off, so strict parsing looks for
// them itself: a '/' outside a string is never JSON.
bool hasCommentOutsideStrings(std::string_view text) {
  bool inString = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '/') {
      return true;
    }
  }
  return false;
}
// A reader per set of options and thread, made once: building one (its settings are a
// Json::Value) cost more than parsing a pod's watch event. A reader resets itself on every parse.
Json::CharReader& readerFor(const JsonParseOptions& options) {
  struct Made {
    JsonParseOptions options;
    std::unique_ptr<Json::CharReader> reader;
  };
  thread_local std::vector<Made> made;
  for (const auto& m : made) {
    if (m.options.rejectDuplicateKeys == options.rejectDuplicateKeys &&
        m.options.rejectTrailingText == options.rejectTrailingText &&
        m.options.strict == options.strict && m.options.maxDepth == options.maxDepth)
      return *m.reader;
  }
  Json::CharReaderBuilder builder;
  builder["collectComments"] = false;
  builder["stackLimit"] = options.maxDepth;
  builder["rejectDupKeys"] = options.rejectDuplicateKeys;
  builder["failIfExtra"] = options.rejectTrailingText;
  if (options.strict) {
    builder["allowComments"] = false;
    builder["allowTrailingCommas"] = false;
    builder["allowSingleQuotes"] = false;
    builder["allowSpecialFloats"] = false;
    builder["allowNumericKeys"] = false;
    builder["allowDroppedNullPlaceholders"] = false;
    builder["strictRoot"] = true;
  }
  made.push_back({options, std::unique_ptr<Json::CharReader>(builder.newCharReader())});
  return *made.back().reader;
}

}  // namespace

Result<Json::Value> parseJson(std::string_view text, const JsonParseOptions& options) {
  if (options.strict && hasCommentOutsideStrings(text))
    return fail(ErrorCode::Invalid, "malformed JSON: comments are not JSON");
  Json::CharReader& reader = readerFor(options);
  Json::Value root;
  std::string errors;
  try {
    if (!reader.parse(text.data(), text.data() + text.size(), &root, &errors)) {
      while (!errors.empty() && (errors.back() == '\n' || errors.back() == ' ')) errors.pop_back();
      return fail(ErrorCode::Invalid, "malformed JSON: " + errors);
    }
  } catch (const std::exception& e) {  // jsoncpp throws when the nesting limit is exceeded
    return fail(ErrorCode::Invalid, std::string("malformed JSON: ") + e.what());
  }
  return root;
}

namespace {

// What jsoncpp's compact writer (indentation "", emitUTF8) writes, without its per-character
// string building: the node-state patch carries a 30 KB string, written on every pass.
void appendJson(std::string& out, const Json::Value& value) {
  switch (value.type()) {
    case Json::nullValue:
      out += "null";
      break;
    case Json::intValue:
      out += Json::valueToString(value.asLargestInt());
      break;
    case Json::uintValue:
      out += Json::valueToString(value.asLargestUInt());
      break;
    case Json::realValue:
      out += Json::valueToString(value.asDouble());
      break;
    case Json::booleanValue:
      out += value.asBool() ? "true" : "false";
      break;
    case Json::stringValue: {
      const char* begin = nullptr;
      const char* end = nullptr;
      value.getString(&begin, &end);
      appendJsonQuoted(out, std::string_view(begin, static_cast<std::size_t>(end - begin)));
      break;
    }
    case Json::arrayValue: {
      out += '[';
      for (Json::ArrayIndex i = 0; i < value.size(); ++i) {
        if (i != 0) out += ',';
        appendJson(out, value[i]);
      }
      out += ']';
      break;
    }
    case Json::objectValue: {
      out += '{';
      bool first = true;
      for (auto it = value.begin(); it != value.end(); ++it) {
        if (!first) out += ',';
        first = false;
        const char* end = nullptr;
        const char* begin = it.memberName(&end);
        appendJsonQuoted(out, std::string_view(begin, static_cast<std::size_t>(end - begin)));
        out += ':';
        appendJson(out, *it);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string toJson(const Json::Value& value) {
  std::string out;
  appendJson(out, value);
  return out;
}

namespace {

// The bytes appendJsonQuoted stops at, per quoting: control characters, '"' and '\\'; for
// Go's encoder also '<', '>', '&' and 0xE2 (U+2028 and U+2029 start with it).
constexpr std::array<bool, 256> stopsAt(JsonQuoting quoting) {
  std::array<bool, 256> stops{};
  for (int c = 0; c < 0x20; ++c) stops[c] = true;
  stops['"'] = stops['\\'] = true;
  if (quoting == JsonQuoting::AsGo) stops['<'] = stops['>'] = stops['&'] = stops[0xE2] = true;
  return stops;
}

constexpr auto kPlainStops = stopsAt(JsonQuoting::Plain);
constexpr auto kGoStops = stopsAt(JsonQuoting::AsGo);

}  // namespace

void appendJsonQuoted(std::string& out, std::string_view text, JsonQuoting quoting) {
  const auto& stops = quoting == JsonQuoting::AsGo ? kGoStops : kPlainStops;
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  // Runs that need no escape go in at once.
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (!stops[c]) continue;
    const char* escape = nullptr;
    std::size_t width = 1;
    char buf[8];
    switch (c) {
      case '"':
        escape = "\\\"";
        break;
      case '\\':
        escape = "\\\\";
        break;
      case '\n':
        escape = "\\n";
        break;
      case '\r':
        escape = "\\r";
        break;
      case '\t':
        escape = "\\t";
        break;
      case '\b':
        escape = "\\b";
        break;
      case '\f':
        escape = "\\f";
        break;
      case 0xE2:  // AsGo only: U+2028 and U+2029 (E2 80 A8/A9); other characters go as they are
        if (i + 2 < text.size() && text[i + 1] == '\x80' &&
            (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
          escape = text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
          width = 3;
        }
        break;
      default:
        std::snprintf(buf, sizeof buf, "\\u%04x", c);  // control characters; <, > and & AsGo
        escape = buf;
    }
    if (escape == nullptr) continue;
    out.append(text, run, i - run);
    out += escape;
    i += width - 1;
    run = i + 1;
  }
  out.append(text, run, text.size() - run);
  out += '"';
}

std::string jsonQuote(std::string_view text, JsonQuoting quoting) {
  std::string out;
  appendJsonQuoted(out, text, quoting);
  return out;
}

std::string stringField(const Json::Value& object, const char* key, std::string fallback) {
  if (!object.isObject()) return fallback;
  const Json::Value& v = object[key];
  return v.isString() ? v.asString() : fallback;
}

std::string_view stringFieldView(const Json::Value& object, const char* key) {
  if (!object.isObject()) return {};
  const Json::Value* v = object.find(key, key + std::char_traits<char>::length(key));
  const char* begin = nullptr;
  const char* end = nullptr;
  if (v == nullptr || !v->isString() || !v->getString(&begin, &end)) return {};
  return {begin, static_cast<std::size_t>(end - begin)};
}

std::int64_t intField(const Json::Value& object, const char* key, std::int64_t fallback) {
  if (!object.isObject()) return fallback;
  const Json::Value& v = object[key];
  return v.isInt64() ? v.asInt64() : fallback;
}

bool boolField(const Json::Value& object, const char* key, bool fallback) {
  if (!object.isObject()) return fallback;
  const Json::Value& v = object[key];
  return v.isBool() ? v.asBool() : fallback;
}

const Json::Value& objectField(const Json::Value& object, const char* key) {
  if (!object.isObject()) return kNull;
  const Json::Value* v = object.find(key, key + std::char_traits<char>::length(key));
  return (v != nullptr && v->isObject()) ? *v : kNull;
}

const Json::Value& arrayField(const Json::Value& object, const char* key) {
  if (!object.isObject()) return kNull;
  const Json::Value* v = object.find(key, key + std::char_traits<char>::length(key));
  return (v != nullptr && v->isArray()) ? *v : kNull;
}

}  // namespace eni
