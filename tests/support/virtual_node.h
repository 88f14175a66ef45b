#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "agent/kube/nodeeni_status_writer.h"
#include "agent/kube/objects.h"

namespace eni::testing {

/// A node without EC2 or links, for multi-node tests and bench/fleet: its NodeENI bookkeeping
/// toward the API server is the agent's own (NodeEniAttachmentWriter, NodeEniStatusWriter,
/// planBookkeeping, checkRemaining), driven by the caller instead of a pass. `oldDesign` plays
/// the agent before NodeENIAttachments: its entries server-side-applied into the NodeENI's
/// status.attachments. Loop thread only.
class VirtualNode {
 public:
  VirtualNode(KubeApi& kube, const Clock& clock, std::string node, std::string nodeUid,
              bool oldDesign);

  /// What a pass that attached `entries` of `nodeEni` (as the node's watch shows it) writes:
  /// its object (or status entries), and the finalizer when missing. `done` once all answered:
  /// true when the record was written (a refused finalizer attempt is no failure: another node
  /// added it), false when it must be tried again (as an agent's retry would).
  void record(const NodeEni& nodeEni, std::vector<NodeEniAttachment> entries,
              std::function<void(bool)> done);
  /// The deletion protocol once its ENIs are released: its object goes (old design: its status
  /// entries), then the finalizer when nothing of any node remains (the old design: when the
  /// answer shows status.attachments empty). Reads the NodeENI by GET where an agent has its
  /// watch's copy. `done(true)` when this node removed the finalizer.
  void cleanUp(const NodeEni& nodeEni, std::function<void(bool)> done);

  /// API-server writes sent (applies, deletes, finalizer updates, refused ones too).
  std::uint64_t writes() const { return writes_ + records_.writes(); }
  /// The last write error's code and HTTP status ("Transient 504"), or "" when none failed.
  const std::string& lastError() const { return lastError_; }

 private:
  void checkRemaining(const NodeEni& nodeEni, std::function<void(bool)> done);
  void removeFinalizer(const std::string& name, std::function<void(bool)> done);

  KubeApi& kube_;
  std::string node_;
  std::string nodeUid_;
  bool oldDesign_;
  NodeEniAttachmentWriter records_;
  NodeEniStatusWriter status_;
  std::uint64_t writes_ = 0;
  std::string lastError_;
};

}  // namespace eni::testing
