#pragma once

#include <optional>
#include <string>

#include "agent/base/error.h"
#include "agent/state/node_state.h"

namespace eni {

/// Where host mode keeps its NodeState between runs. Loop thread only.
class StateStore {
 public:
  virtual ~StateStore() = default;
  /// The saved state, or nullopt when there is none (a cold start).
  [[nodiscard]] virtual Result<std::optional<NodeState>> load() = 0;
  /// Replaces the saved state; after success a crash leaves either the old or the new state.
  [[nodiscard]] virtual Result<void> save(const NodeState& state) = 0;
};

/// <state-dir>/state.json, the node annotation's schema. Writes are atomic: a temporary file in
/// the same directory, fsync, rename over state.json, fsync of the directory.
/// A state file that cannot be read as NodeState (corrupt, or written by a newer agent) is moved
/// aside to state.json.corrupt-<unix seconds>, never overwritten, and load() reports a cold
/// start; movedAside() names the file so the caller can log it.
class FileStateStore final : public StateStore {
 public:
  explicit FileStateStore(std::string dir);
  Result<std::optional<NodeState>> load() override;
  Result<void> save(const NodeState& state) override;

  const std::string& path() const { return path_; }
  /// Where the last load() moved an unreadable state file, and why; empty when it did not.
  const std::string& movedAside() const { return movedAside_; }
  const std::string& movedAsideReason() const { return movedAsideReason_; }
  int saves() const { return saves_; }

 private:
  std::string dir_;
  std::string path_;
  std::string movedAside_;
  std::string movedAsideReason_;
  int saves_ = 0;
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
