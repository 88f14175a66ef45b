#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/base/clock.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/objects.h"

namespace eni {

/// The NodeENI status condition that points readers of status.attachments to the per-node
/// NodeENIAttachment objects.
inline constexpr const char* kAttachmentsRecordedCondition = "AttachmentsRecorded";

/// One node agent's writes to NodeENIs: its own entries of status.attachments, the NodeENI
/// finalizer, and the removal of a dead node's entries, from typed inputs. Each call that sends
/// runs `done` once with the NodeENI as the API server answered it (decoded; Internal when the
/// answer is no NodeENI), or KubeApi's error (NotFound: the NodeENI is gone, Conflict: it changed
/// since `nodeEni.meta.resourceVersion`). Nothing is logged; the caller decides. Loop thread only;
/// must outlive the calls it starts (inFlight()).
class NodeEniStatusWriter {
 public:
  NodeEniStatusWriter(KubeApi& kube, const Clock& clock, std::string nodeName)
      : kube_(kube), clock_(clock), nodeName_(std::move(nodeName)) {}
  NodeEniStatusWriter(const NodeEniStatusWriter&) = delete;
  NodeEniStatusWriter& operator=(const NodeEniStatusWriter&) = delete;

  /// Makes `entries` this node's entries of NodeENI `name`'s status.attachments, by server-side
  /// apply of the status subresource (field manager "eni-agent/<node>", forced): entries of
  /// other nodes stay as they are, and this node's former ones that `entries` lacks go. Every
  /// entry gets this node as nodeID and now as lastUpdated (the inputs' are ignored); empty
  /// strings and a zero MTU are left out. Sends nothing and returns false when `entries` are the
  /// ones last applied to `name` with success (lastUpdated aside); else returns true and `done`
  /// runs once.
  bool applyEntries(const std::string& name, const std::vector<NodeEniAttachment>& entries,
                    Callback<NodeEni> done);
  /// Forgets what was applied to NodeENI `name` (it was deleted), so that a new one of that name
  /// gets this node's entries.
  void forget(const std::string& name) { applied_.erase(name); }

  /// Adds `finalizer` to the NodeENI's metadata.finalizers (at the end) or removes it, by update
  /// (PUT) of nodeEni.source with only that changed, conditional on its resourceVersion. When the
  /// list already is as asked, sends nothing and answers `nodeEni`. Invalid when nodeEni has no
  /// source (a whole-object update from the typed fields alone would drop what they lack).
  void setFinalizer(const NodeEni& nodeEni, const std::string& finalizer, bool present,
                    Callback<NodeEni> done);
  /// Removes every status entry of `deadNode` (a node whose Node object is gone, which will never
  /// remove its own), by update (PUT) of the status subresource: nodeEni.source with those entries
  /// dropped and every other entry sent back as it was, conditional on its resourceVersion.
  /// Invalid when nodeEni has no source.
  void pruneNode(const NodeEni& nodeEni, const std::string& deadNode, Callback<NodeEni> done);

  /// Says in NodeENI `name`'s status that per-node attachments are recorded elsewhere: the
  /// condition kAttachmentsRecordedCondition (status True, reason "NodeENIAttachments", a
  /// message naming the NodeENIAttachment objects and how to list them), by server-side apply
  /// of the status subresource under field manager "eni-agent" (forced), so any agent may write
  /// it again. status.attachments is left as it is: agents no longer write it.
  /// With `resourceVersion`, only onto that version of the NodeENI (Conflict otherwise), so that
  /// of a fleet asking at once one write lands.
  void markAttachmentsRecorded(const std::string& name, Callback<NodeEni> done,
                               const std::string& resourceVersion = "");

  /// Writes sent and not yet answered: part of a caller's idle().
  std::size_t inFlight() const { return inFlight_; }
  const std::string& fieldManager() const { return fieldManager_; }

 private:
  Callback<Json::Value> decodeAnswer(Callback<NodeEni> done);

  KubeApi& kube_;
  const Clock& clock_;
  std::string nodeName_;
  std::string fieldManager_ = "eni-agent/" + nodeName_;
  std::map<std::string, std::string> applied_;  // NodeENI -> the entries last applied, as JSON
  std::size_t inFlight_ = 0;
};

}  // namespace eni
