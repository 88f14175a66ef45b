#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/state/node_state.h"
#include "agent/state/node_state_store.h"

namespace eni::testing {

/// A NodeStateStore in memory for unit tests: every change is "written" at once (as host mode's
/// file store does), unless failSaves; writeAhead answers at once with whether the write landed
/// (or with storeWriteAhead, when set). `saved` is what a restart would load (reload()).
class FakeStateStore final : public NodeStateStore {
 public:
  FakeStateStore() = default;
  /// A store that loaded `text` as the node-state annotation: empty is no record; a record that
  /// does not decode loads as none (the annotation store logs it and starts cold).
  static FakeStateStore fromAnnotation(const std::string& text) {
    FakeStateStore store;
    store.loadAnnotation(text);
    return store;
  }
  /// A store that has read nothing yet (loadAnnotation() later).
  static FakeStateStore unloaded() {
    FakeStateStore store;
    store.loaded_ = false;
    return store;
  }
  void loadAnnotation(const std::string& text) {
    saved.reset();
    if (auto state = decodeNodeState(text); !text.empty() && state) saved = *state;
    reload();
  }

  bool loaded() const override { return loaded_; }
  const NodeState& current() const override { return state_; }
  void update(const std::function<void(NodeState&)>& change) override {
    NodeState next = state_;
    change(next);
    if (next == state_ && written_) return;
    state_ = std::move(next);
    write();
  }
  void writeAhead(std::function<void(bool stored)> done) override {
    writeAheads.push_back(state_);
    if (onWriteAhead) onWriteAhead(state_);
    const bool stored = written_ || write();
    done(storeWriteAhead.value_or(stored));
  }
  std::string problem() const override { return ""; }
  bool idle() const override { return true; }

  /// A restart: the held state becomes what was last written.
  void reload() {
    state_ = saved.value_or(NodeState{});
    written_ = true;
    loaded_ = true;
  }

  std::optional<NodeState> saved;  // what the last successful write left
  int saves = 0;                   // writes tried
  bool failSaves = false;
  std::optional<bool> storeWriteAhead;  // overrides writeAhead's answer
  std::function<void(const NodeState&)> onSave;
  std::function<void(const NodeState&)> onWriteAhead;
  std::vector<NodeState> writeAheads;  // the state at each writeAhead()

 private:
  bool write() {
    ++saves;
    if (failSaves) {
      written_ = false;
      return false;
    }
    saved = state_;
    written_ = true;
    if (onSave) onSave(state_);
    return true;
  }

  NodeState state_;
  bool loaded_ = true;
  bool written_ = true;
};

}  // namespace eni::testing
