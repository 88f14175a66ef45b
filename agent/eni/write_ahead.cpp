#include "agent/eni/write_ahead.h"

namespace eni {

void CreateWriteAhead::load(const std::vector<std::string>& creating) {
  for (const auto& owner : creating) owners_[owner] = WriteAheadState::Stored;
}

void CreateWriteAhead::want(const std::vector<std::string>& owners) {
  for (const auto& owner : owners) owners_.emplace(owner, WriteAheadState::Wanted);
}

bool CreateWriteAhead::begin() {
  if (recording()) return false;
  bool any = false;
  for (auto& [owner, state] : owners_) {
    if (state != WriteAheadState::Wanted) continue;
    state = WriteAheadState::Recording;
    any = true;
  }
  return any;
}

void CreateWriteAhead::finished(bool stored) {
  for (auto it = owners_.begin(); it != owners_.end();) {
    if (it->second != WriteAheadState::Recording) {
      ++it;
    } else if (stored) {
      it->second = WriteAheadState::Stored;
      ++it;
    } else {
      it = owners_.erase(it);  // not stored, so not recorded: a later pass asks again
    }
  }
}

void CreateWriteAhead::clear() { owners_.clear(); }

bool CreateWriteAhead::recording() const {
  for (const auto& [owner, state] : owners_) {
    if (state == WriteAheadState::Recording) return true;
  }
  return false;
}

std::set<std::string> CreateWriteAhead::stored() const {
  std::set<std::string> out;
  for (const auto& [owner, state] : owners_) {
    if (state == WriteAheadState::Stored) out.insert(owner);
  }
  return out;
}

std::vector<std::string> CreateWriteAhead::names() const {
  std::vector<std::string> out;
  for (const auto& [owner, state] : owners_) out.push_back(owner);
  return out;
}

}  // namespace eni
