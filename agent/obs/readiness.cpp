#include "agent/obs/readiness.h"

namespace eni {

namespace {

bool isCodeChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// "name: text", after a "; " when `out` already holds a check.
void append(std::string& out, const std::string& name, const std::string& text) {
  if (!out.empty()) out += "; ";
  out += name;
  out += ": ";
  out += text;
}

}  // namespace

void Readiness::addCheck(std::string name, Check check) {
  checks_.emplace_back(std::move(name), std::move(check));
}

ReadinessReport Readiness::report() const {
  ReadinessReport out;
  for (const auto& [name, check] : checks_) {
    const std::string why = check();
    if (why.empty()) continue;
    out.ready = false;
    append(out.detail, name, why);
    append(out.summary, name, reasonCode(why));
  }
  return out;
}

std::string reasonCode(std::string_view reason) {
  std::size_t end = 0;
  while (end < reason.size() && isCodeChar(reason[end])) ++end;
  // Only "Code" or "Code: detail": a reason like "initial list in progress" has no code.
  const bool wellFormed = end > 0 && (end == reason.size() || reason.substr(end, 2) == ": ");
  return wellFormed ? std::string(reason.substr(0, end)) : std::string("NotReady");
}

}  // namespace eni
