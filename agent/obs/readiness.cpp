#include "agent/obs/readiness.h"

namespace eni {

void Readiness::addCheck(std::string name, Check check) {
  checks_.emplace_back(std::move(name), std::move(check));
}

bool Readiness::ready() const { return reasons().empty(); }

std::string Readiness::reasons() const {
  std::string out;
  for (const auto& [name, check] : checks_) {
    const std::string why = check();
    if (why.empty()) continue;
    if (!out.empty()) out += "; ";
    out += name + ": " + why;
  }
  return out;
}

}  // namespace eni
