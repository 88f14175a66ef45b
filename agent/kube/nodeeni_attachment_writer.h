#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/objects.h"

namespace eni {

/// Labels of a NodeENIAttachment: the deletion protocol lists by the first (a UID always fits a
/// label value; a name may not), people by the second (set when the name fits in 63 characters).
inline constexpr const char* kNodeEniUidLabel = "eni-agent.io/nodeeni-uid";
inline constexpr const char* kNodeEniNameLabel = "eni-agent.io/nodeeni";
/// The most ENI entries one NodeENIAttachment holds (the CRD's maxItems): with every field at
/// its schema's maximum length the object stays under 64 KiB (nodeeni_attachment_writer_test).
inline constexpr std::size_t kMaxAttachmentEntries = 128;
/// The longest `reason` written; longer ones are cut (the CRD's maxLength).
inline constexpr std::size_t kMaxAttachmentReason = 1024;

/// One node's record for one NodeENI: the cluster-scoped NodeENIAttachment object
/// nodeEniAttachmentName(nodeEni, nodeName), written by that node's agent alone.
struct NodeEniAttachmentObject {
  std::string nodeEni;                     // spec.nodeENI
  std::string nodeEniUid;                  // spec.nodeENIUID, and the label kNodeEniUidLabel
  std::string nodeName;                    // spec.nodeName
  std::string nodeUid;                     // the Node's UID: its ownerReference (empty: none)
  std::string instanceId;                  // spec.instanceID
  std::vector<NodeEniAttachment> entries;  // status.attachments (nodeId and message unused)
  std::string reason;                      // status.reason: why the NodeENI is not satisfied
  /// The object's name as read back (encode derives it; decode fills it).
  std::string name;
  /// "Failed" with a reason, else "Attached" when every entry is attached, else "Pending".
  std::string phase() const;
  bool operator==(const NodeEniAttachmentObject&) const = default;
};

/// "<nodeEni>.<node>" when that fits an object name (253 characters), else a cut prefix and 16 hex
/// characters of a hash of both, so that two pairs never share a name in practice. Pure.
std::string nodeEniAttachmentName(const std::string& nodeEni, const std::string& node);
/// The object as written: at most kMaxAttachmentEntries entries and kMaxAttachmentReason bytes
/// of reason (what is cut is counted in status.truncatedEntries). `now` is status.lastUpdated.
/// Pure.
Json::Value encodeNodeEniAttachment(const NodeEniAttachmentObject& object, const std::string& now);
/// Invalid when `object` is not a NodeENIAttachment with spec.nodeENI and spec.nodeName.
[[nodiscard]] Result<NodeEniAttachmentObject> decodeNodeEniAttachment(const Json::Value& object);

/// One node agent's NodeENIAttachment objects, and the reads the NodeENI deletion protocol needs.
/// It never lists or watches other nodes' objects: load() lists this node's own (a field selector
/// on spec.nodeName), remaining() reads at most one object. Each call that sends runs `done` once
/// with KubeApi's error or success; nothing is logged. Loop thread only; must outlive the calls
/// it starts (inFlight()).
class NodeEniAttachmentWriter {
 public:
  NodeEniAttachmentWriter(KubeApi& kube, const Clock& clock, std::string nodeName)
      : kube_(kube), clock_(clock), nodeName_(std::move(nodeName)) {}
  NodeEniAttachmentWriter(const NodeEniAttachmentWriter&) = delete;
  NodeEniAttachmentWriter& operator=(const NodeEniAttachmentWriter&) = delete;

  /// Lists this node's objects (fieldSelector spec.nodeName=<node>, one page per 500): what a
  /// restart compares against, so that an unchanged record is not written again.
  void load(Callback<void> done);
  bool loaded() const { return loaded_; }
  /// This node's objects as last read or written, by NodeENI name.
  const std::map<std::string, NodeEniAttachmentObject>& own() const { return own_; }

  /// Makes this node's object for object.nodeEni hold `object` (nodeName is set to this node), by
  /// server-side apply (field manager "eni-agent", forced; the object is this node's alone), which
  /// creates it when missing. Returns false and sends nothing when own() already holds it.
  bool apply(NodeEniAttachmentObject object, Callback<void> done);
  /// Deletes this node's object for `nodeEni`. Returns false and sends nothing when own() has
  /// none. A NotFound answer is success.
  bool remove(const std::string& nodeEni, Callback<void> done);

  /// Any NodeENIAttachment of the NodeENI `nodeEniUid`, any node's: one list by kNodeEniUidLabel
  /// with limit=1, so a fleet of objects costs one item. Answers that item, or nullopt when none.
  void remaining(const std::string& nodeEniUid,
                 Callback<std::optional<NodeEniAttachmentObject>> done);
  /// The NodeENIAttachments of the NodeENI `nodeEniUid`, any node's, when its cleanup timed out:
  /// one list by kNodeEniUidLabel of at most `limit` items. Answers them and how many more the API
  /// server counted past them (1 when it only said there were more).
  struct Remaining {
    std::vector<NodeEniAttachmentObject> objects;
    std::int64_t more = 0;
  };
  void remainingAll(const std::string& nodeEniUid, int limit, Callback<Remaining> done);
  /// Deletes another node's object `name` (its Node is gone: nobody else will). NotFound is
  /// success.
  void removeOrphan(const std::string& name, Callback<void> done);

  std::size_t inFlight() const { return inFlight_; }
  /// Writes sent (apply, remove, removeOrphan), answered or not: the bookkeeping cost.
  std::uint64_t writes() const { return writes_; }

 private:
  /// Counts the answer; NotFound is success when `goneIsDone` (a delete).
  Callback<Json::Value> finish(bool goneIsDone, Callback<void> done,
                               std::function<void()> onSuccess);

  KubeApi& kube_;
  const Clock& clock_;
  std::string nodeName_;
  std::map<std::string, NodeEniAttachmentObject> own_;
  bool loaded_ = false;
  std::size_t inFlight_ = 0;
  std::uint64_t writes_ = 0;
};

}  // namespace eni
