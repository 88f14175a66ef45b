#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/enimanager/eni_manager_pass.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "agent/kube/objects.h"

namespace eni {

/// What one node records about its NodeENIs after a pass, and what it knows of the API side.
struct BookkeepingInput {
  std::string nodeName;
  std::string nodeUid;  // the Node's UID (its objects' owner); empty until the Node was seen
  std::string instanceId;
  std::map<std::string, std::string> labels;
  std::vector<NodeEni> nodeEnis;  // as the API server last showed them
  /// This node's entries per NodeENI (entriesOf()), and the problem of each NodeENI that has one.
  std::map<std::string, std::vector<NodeEniAttachment>> entries;
  std::map<std::string, std::string> problems;
  std::map<std::string, NodeEniAttachmentObject> own;  // NodeEniAttachmentWriter::own()
  /// NodeENIs whose finalizer this node already tried to add at their current resourceVersion:
  /// a refused (Conflict) attempt waits for the watch to show the next version.
  std::set<std::string> finalizerTried;
  /// NodeENIs being deleted whose remaining objects this node already checked at their current
  /// resourceVersion, with nothing new of its own since.
  std::set<std::string> remainingChecked;
  /// NodeENIs whose object this node removed in this run (it took part in them).
  std::set<std::string> removedOwn;
};

/// The NodeENI bookkeeping of one pass: at most one NodeENIAttachment write per NodeENI that
/// changed on this node, and the finalizer protocol.
struct BookkeepingPlan {
  std::vector<NodeEniAttachmentObject> apply;  // this node's objects that must hold this
  std::vector<std::string> remove;             // NodeENIs whose object of this node must go
  std::vector<std::string> addFinalizer;       // ... that need the finalizer (this node has ENIs)
  /// ... that hold the finalizer but not the condition AttachmentsRecorded: a NodeENI whose
  /// finalizer another tool added (aws-multi-eni-controller). Asked for once per version, as
  /// the finalizer is.
  std::vector<std::string> markRecorded;
  /// NodeENIs being deleted, with the finalizer, for which this node has nothing left: ask
  /// whether any node's object remains (NodeEniAttachmentWriter::remaining) and remove the
  /// finalizer when none does.
  std::vector<std::string> checkRemaining;
  /// NodeENIs whose status.attachments still hold entries of this node (written by an older
  /// agent): they are taken out once (an empty apply under that agent's field manager).
  std::vector<std::string> dropOldEntries;
};

/// This node's entries per NodeENI from a pass's record: attached ENIs ("attached") and those it
/// still holds (kept, or a release not finished), in record order. Pure.
std::map<std::string, std::vector<NodeEniAttachment>> entriesOf(const ManagerRecord& record);

/// Decides the bookkeeping. Pure.
/// - A NodeENI that exists and has entries or a problem on this node: its object holds them.
/// - This node's object of a NodeENI with neither (deleted, or no longer selecting the node, and
///   every ENI released) is removed; so is one of a NodeENI that is gone, once nothing is held.
/// - The finalizer is asked for only by a node that has an attached ENI of a NodeENI that lacks
///   it and is not being deleted, once per resourceVersion.
/// - A NodeENI being deleted that keeps the finalizer is checked by every node that has no
///   object of it left (once per resourceVersion), if the NodeENI selects the node or the node
///   just removed its own object.
BookkeepingPlan planBookkeeping(const BookkeepingInput& in);

/// What to do with the one object NodeEniAttachmentWriter::remaining() found for a NodeENI being
/// deleted.
enum class RemainingStep {
  RemoveFinalizer,  // none left: the deletion completes
  CheckNode,        // another node's object: GET that Node
  PruneOrphan,      // its Node is gone (GET answered NotFound): delete the object, check again
  Wait,             // a live node's object: that node's agent finishes the protocol
};

/// `found`: what remaining() answered; `nodeGone`: unset before the Node was read, else whether
/// the GET answered NotFound. Pure.
RemainingStep decideRemaining(const std::string& nodeName,
                              const std::optional<NodeEniAttachmentObject>& found,
                              std::optional<bool> nodeGone);

/// aws-multi-eni-controller's annotation: when its cleanup of a deleted NodeENI started (RFC 3339).
inline constexpr const char* kOldCleanupStartAnnotation =
    "aws-multi-eni-controller/cleanup-start-time";
/// The Warning event of a NodeENI whose finalizer was removed because its cleanup timed out.
inline constexpr const char* kCleanupTimeoutReason = "CleanupTimeout";
/// Nodes the CleanupTimeout event names (the log names every one listed), and ENIs per node.
inline constexpr std::size_t kCleanupEventNodes = 5;
inline constexpr std::size_t kCleanupEventEnis = 4;

/// When the cleanup of NodeENI `n` (being deleted) started, in epoch seconds: the time in
/// aws-multi-eni-controller's annotation kOldCleanupStartAnnotation when it holds a valid one (that
/// tool had started then), else metadata.deletionTimestamp, which the API server sets once and
/// every agent reads alike; nullopt when neither (not being deleted). Pure.
std::optional<std::int64_t> cleanupStart(const NodeEni& n);

/// How long after `maxCleanup` this node takes its turn to end a cleanup that has not completed:
/// a delay in [0, min(maxCleanup / 10, 60 s)) from a hash of the node and the NodeENI's UID, so
/// that in a fleet the first agent's finalizer removal usually reaches the others before their
/// turn comes. Pure.
Duration cleanupTurn(const std::string& nodeName, const std::string& nodeEniUid,
                     Duration maxCleanup);

/// "30m", "90s", "1500ms". Pure.
std::string durationText(Duration d);

/// The CleanupTimeout event's message: the duration, the nodes whose NodeENIAttachment objects
/// remain (`left`, plus `more` not listed) and the ENIs each still holds, at most
/// kCleanupEventNodes nodes and kCleanupEventEnis ENIs each, and what to do about them. Pure.
std::string cleanupTimeoutMessage(Duration maxCleanup,
                                  const std::vector<NodeEniAttachmentObject>& left,
                                  std::int64_t more);

}  // namespace eni
