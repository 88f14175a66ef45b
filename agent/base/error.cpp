#include "agent/base/error.h"

namespace eni {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::Transient:
      return "Transient";
    case ErrorCode::Throttled:
      return "Throttled";
    case ErrorCode::NotFound:
      return "NotFound";
    case ErrorCode::Conflict:
      return "Conflict";
    case ErrorCode::Invalid:
      return "Invalid";
    case ErrorCode::Permission:
      return "Permission";
    case ErrorCode::Gone:
      return "Gone";
    case ErrorCode::Internal:
      return "Internal";
  }
  return "Unknown";
}

std::string Error::describe() const {
  std::string out = message;
  std::string extra;
  auto add = [&extra](const std::string& part) {
    if (!extra.empty()) extra += ", ";
    extra += part;
  };
  if (httpStatus != 0) add("http " + std::to_string(httpStatus));
  if (!awsCode.empty()) add("code " + awsCode);
  if (!requestId.empty()) add("request-id " + requestId);
  if (!extra.empty()) out += " (" + extra + ")";
  return out;
}

}  // namespace eni
