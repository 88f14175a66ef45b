#include "agent/base/json.h"

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

std::string toJson(const Json::Value& value) {
  Json::StreamWriterBuilder builder;
  builder["indentation"] = "";
  builder["emitUTF8"] = true;
  return Json::writeString(builder, value);
}

void appendJsonQuoted(std::string& out, std::string_view text) {
  out += '"';
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string jsonQuote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  appendJsonQuoted(out, text);
  return out;
}

std::string stringField(const Json::Value& object, const char* key, std::string fallback) {
  if (!object.isObject()) return fallback;
  const Json::Value& v = object[key];
  return v.isString() ? v.asString() : fallback;
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
