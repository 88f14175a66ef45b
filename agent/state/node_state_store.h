#pragma once

#include <functional>
#include <string>

#include "agent/state/node_state.h"

namespace eni {

/// The one keeper of the node state: the eni-agent.io/state annotation of this node (Kubernetes
/// mode, AnnotationStateStore) or <state-dir>/state.json (host mode, FileStateStore). Each part
/// owns its slice of NodeState and changes only that slice through update(): the tagger `enis` and
/// `instanceId`, the ENI manager `attachments`, `unownedEnis` and `creating`. The store loads the
/// record, debounces writes, keeps one write in flight, never writes past the 64 KiB budget, and
/// answers write-aheads once a write that carries them has landed. Loop thread only.
class NodeStateStore {
 public:
  virtual ~NodeStateStore() = default;

  /// Whether the record of the previous run has been read (the annotation's first Node event, or
  /// the file). Before that, current() is empty and nothing may be written.
  virtual bool loaded() const = 0;
  /// The state as this process holds it: what was loaded, with every update() applied since.
  virtual const NodeState& current() const = 0;
  /// Applies `change` to the held state; it is written (debounced) when its encoding changed.
  virtual void update(const std::function<void(NodeState&)>& change) = 0;
  /// Write-ahead: `done(true)` once a write carrying the state as it is now has landed (at once
  /// when it already has); `done(false)` when that write failed or cannot be made (over the
  /// budget, not loaded yet, a newer agent's record). Whatever the record protects (a CreateTags,
  /// a CreateNetworkInterface) may be sent only after `done(true)`.
  virtual void writeAhead(std::function<void(bool stored)> done) = 0;
  /// "" when the store can keep the state; else a readiness reason ("NewerVersion: ...").
  virtual std::string problem() const = 0;
  /// No write in flight (tests and shutdown wait for it).
  virtual bool idle() const = 0;
};

}  // namespace eni
