#include "agent/config/region.h"

#include <vector>

namespace eni {
namespace {

bool all(std::string_view part, bool (*is)(char)) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!is(c)) return false;
  }
  return true;
}
bool isLowerLetter(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool isRegionName(std::string_view text) {
  // ^[a-z]{2}(-[a-z]+)+-[0-9]+$ by parts: "us", "gov", "west", "1".
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto dash = text.find('-', start);
    parts.push_back(text.substr(start, dash == std::string_view::npos ? text.npos : dash - start));
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  if (parts.size() < 3 || parts.front().size() != 2 || !all(parts.front(), isLowerLetter))
    return false;
  for (std::size_t i = 1; i + 1 < parts.size(); ++i) {
    if (!all(parts[i], isLowerLetter)) return false;
  }
  return all(parts.back(), digit);
}

Result<void> checkRegionName(std::string_view text, const std::string& source) {
  if (isRegionName(text)) return {};
  std::string shown;
  for (char c : text.substr(0, 40)) {
    const auto u = static_cast<unsigned char>(c);
    shown += (u < 0x20 || u >= 0x7f || c == '"') ? '?' : c;
  }
  if (text.size() > 40) shown += "...";
  return fail(ErrorCode::Invalid, source + " gave \"" + shown +
                                      "\", which is not an AWS region name such as us-east-1");
}

}  // namespace eni
