#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/error.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/nodeeni_attachment_writer.h"

namespace eni {

/// How a check of what remains of a NodeENI being deleted ended.
struct RemainingAnswer {
  enum class Outcome {
    NoneLeft,      // no node's object remains: remove the finalizer
    OwnLeft,       // this node's own object: its removal is in flight or failed, try again
    LiveNodeLeft,  // a live node's object: that node's agent finishes the protocol
    Failed,        // a read or a delete failed: `failed` and `error` say which, try again
  };
  Outcome outcome = Outcome::Failed;
  std::optional<NodeEniAttachmentObject> found;  // the object that remains (OwnLeft, LiveNodeLeft)
  const char* failed = "";                       // Failed: what, for the log ("cannot ...")
  std::optional<Error> error;
  /// Objects of nodes whose Node is gone, deleted on the way (nobody else would).
  std::vector<NodeEniAttachmentObject> pruned;
};

/// The NodeENI deletion protocol's reads and prunes for a node that has nothing of NodeENI
/// `nodeEniUid` left: NodeEniAttachmentWriter::remaining() lists one object of any node; another
/// node's object makes it GET that Node; a Node that is gone (NotFound) has its object deleted
/// (removeOrphan) and the list is read again (decideRemaining decides each step). `done` runs
/// once with the outcome; nothing is logged. The ENI manager and the fleet simulator
/// (tests/support VirtualNode) both run it, so what the simulator sends is the agent's.
/// Loop thread only; `kube` and `records` must outlive the call.
void checkRemaining(KubeApi& kube, NodeEniAttachmentWriter& records, const std::string& nodeName,
                    const std::string& nodeEniUid, std::function<void(RemainingAnswer)> done);

}  // namespace eni
