#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <json/value.h>

#include "agent/base/error.h"

namespace eni {

struct JsonParseOptions {
  bool rejectDuplicateKeys = false;
  bool rejectTrailingText = false;
  // RFC 8259 only: no comments, trailing commas, single quotes, NaN/Infinity or a non-object,
  // non-array root. For what users write (annotations, host.json), as other tools read them.
  bool strict = false;
  int maxDepth = 200;
};

/// Parses JSON without throwing; depth is bounded. Invalid input gives ErrorCode::Invalid with
/// jsoncpp's reason, prefixed "malformed JSON: ".
[[nodiscard]] Result<Json::Value> parseJson(std::string_view text,
                                            const JsonParseOptions& options = {});
/// Compact one-line JSON.
std::string toJson(const Json::Value& value);
enum class JsonQuoting {
  Plain,  // '"', '\\' and control characters escaped, everything else as it is (as toJson())
  AsGo,   // also <, >, & and U+2028/U+2029 as \u escapes: what the API server (Go) writes
};
/// A JSON string literal, quotes included.
std::string jsonQuote(std::string_view text, JsonQuoting quoting = JsonQuoting::Plain);
/// jsonQuote(text, quoting) appended to `out`.
void appendJsonQuoted(std::string& out, std::string_view text,
                      JsonQuoting quoting = JsonQuoting::Plain);

// Typed field access that never throws: a missing field or one of the wrong type gives the
// fallback. jsoncpp's asString() and friends throw on a type mismatch; these do not.
std::string stringField(const Json::Value& object, const char* key, std::string fallback = {});
/// stringField() without the copy: a view into `object`, valid while it is; "" when missing or
/// not a string.
std::string_view stringFieldView(const Json::Value& object, const char* key);
std::int64_t intField(const Json::Value& object, const char* key, std::int64_t fallback = 0);
bool boolField(const Json::Value& object, const char* key, bool fallback = false);
/// The member if it is an object, else a null value.
const Json::Value& objectField(const Json::Value& object, const char* key);
/// The member if it is an array, else a null value (which iterates as empty).
const Json::Value& arrayField(const Json::Value& object, const char* key);

}  // namespace eni
