#pragma once

#include <functional>
#include <optional>
#include <string>

#include "agent/base/error.h"
#include "agent/state/node_state.h"
#include "agent/state/node_state_store.h"

namespace eni {

/// <state-dir>/state.json, host mode's NodeStateStore (the node annotation's schema). Host mode
/// owns the whole state. Writes are atomic: a temporary file in the same directory, fsync, rename
/// over state.json, fsync of the directory; update() writes at once when the encoding changed,
/// and writeAhead() answers at once (true when the state as it is now is on disk).
/// A state file that cannot be read as NodeState (corrupt, or written by a newer agent) is moved
/// aside to state.json.corrupt-<unix seconds>, never overwritten, and load() reports a cold
/// start; movedAside() names the file so the caller can log it. Loop thread only.
class FileStateStore final : public NodeStateStore {
 public:
  explicit FileStateStore(std::string dir);
  /// Reads the file: the saved state, or nullopt when there is none (a cold start). After it,
  /// loaded() is true and current() is that state.
  [[nodiscard]] Result<std::optional<NodeState>> load();
  /// Replaces the saved state; after success a crash leaves either the old or the new state.
  [[nodiscard]] Result<void> save(const NodeState& state);

  bool loaded() const override { return loaded_; }
  const NodeState& current() const override { return state_; }
  void update(const std::function<void(NodeState&)>& change) override;
  void writeAhead(std::function<void(bool stored)> done) override;
  /// "" while the state is on disk; else why the last write failed ("StateFileUnwritable: ...").
  std::string problem() const override { return problem_; }
  /// Writes are synchronous: nothing is ever in flight.
  bool idle() const override { return true; }

  const std::string& path() const { return path_; }
  /// Where the last load() moved an unreadable state file, and why; empty when it did not.
  const std::string& movedAside() const { return movedAside_; }
  const std::string& movedAsideReason() const { return movedAsideReason_; }
  int saves() const { return saves_; }

 private:
  /// Writes state_ unless the file already holds it; true when it does afterwards.
  bool writeCurrent();

  std::string dir_;
  std::string path_;
  std::string movedAside_;
  std::string movedAsideReason_;
  int saves_ = 0;
  bool loaded_ = false;
  NodeState state_;
  std::string written_;  // what the file holds, to write only on change
  std::string problem_;
};

/// An exclusive, non-blocking flock on <state-dir>/lock, held for the life of the object, so a
/// second copy of the agent on the same state directory exits at once. The lock file records
/// the holder's pid for the error message.
class StateDirLock {
 public:
  /// Creates the directory (0755) when it is missing. Conflict when another process holds the
  /// lock ("... is locked by another eni-agent (pid N) ..."); Permission or Transient otherwise.
  [[nodiscard]] static Result<StateDirLock> acquire(const std::string& dir);
  StateDirLock(StateDirLock&& other) noexcept;
  StateDirLock& operator=(StateDirLock&& other) noexcept;
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;
  ~StateDirLock();

 private:
  explicit StateDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace eni
