#include "agent/kube/nodeeni_attachment_writer.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <utility>

#include "agent/base/json.h"

namespace eni {
namespace {

constexpr std::size_t kMaxName = 253;
constexpr std::size_t kMaxLabelValue = 63;
constexpr const char* kApiVersion = "networking.k8s.aws/v1alpha1";
constexpr const char* kFieldManager = "eni-agent";

// FNV-1a: only tells two long names apart, nothing depends on it being hard to collide.
std::string hash16(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

void setIfAny(Json::Value& out, const char* key, const std::string& value) {
  if (!value.empty()) out[key] = value;
}

Json::Value encodeEntry(const NodeEniAttachment& entry) {
  Json::Value e;
  setIfAny(e, "eniID", entry.eniId);
  setIfAny(e, "attachmentID", entry.attachmentId);
  setIfAny(e, "subnetID", entry.subnetId);
  e["deviceIndex"] = static_cast<Json::Int64>(entry.deviceIndex);
  if (entry.mtu > 0) e["mtu"] = static_cast<Json::Int64>(entry.mtu);
  setIfAny(e, "status", entry.status);
  if (entry.dpdkBound) e["dpdkBound"] = true;
  setIfAny(e, "dpdkDriver", entry.dpdkDriver);
  setIfAny(e, "dpdkResourceName", entry.dpdkResourceName);
  setIfAny(e, "dpdkPCIAddress", entry.dpdkPciAddress);
  return e;
}

NodeEniAttachment decodeEntry(const Json::Value& e) {
  NodeEniAttachment entry;
  entry.eniId = stringField(e, "eniID");
  entry.attachmentId = stringField(e, "attachmentID");
  entry.subnetId = stringField(e, "subnetID");
  entry.deviceIndex = intField(e, "deviceIndex");
  entry.mtu = intField(e, "mtu");
  entry.status = stringField(e, "status");
  entry.dpdkBound = boolField(e, "dpdkBound", false);
  entry.dpdkDriver = stringField(e, "dpdkDriver");
  entry.dpdkResourceName = stringField(e, "dpdkResourceName");
  entry.dpdkPciAddress = stringField(e, "dpdkPCIAddress");
  return entry;
}

Json::Value encodeMetadata(const NodeEniAttachmentObject& o) {
  Json::Value meta;
  meta["name"] = nodeEniAttachmentName(o.nodeEni, o.nodeName);
  meta["labels"][kNodeEniUidLabel] = o.nodeEniUid;
  if (o.nodeEni.size() <= kMaxLabelValue) meta["labels"][kNodeEniNameLabel] = o.nodeEni;
  if (!o.nodeUid.empty()) {
    // The Node alone owns it: the garbage collector deletes a dependent only once every owner is
    // gone, so a NodeENI owner (which a finalizer keeps while it is deleted) would keep a dead
    // node's object forever. The NodeENI deletion protocol removes the rest.
    Json::Value owner;
    owner["apiVersion"] = "v1";
    owner["kind"] = "Node";
    owner["name"] = o.nodeName;
    owner["uid"] = o.nodeUid;
    meta["ownerReferences"].append(owner);
  }
  return meta;
}

ObjectRef attachmentRef(const std::string& name) {
  return ObjectRef{ResourceKind::nodeEniAttachments(), "", name, ""};
}

}  // namespace

std::string NodeEniAttachmentObject::phase() const {
  if (!reason.empty()) return "Failed";
  const bool attached = !entries.empty() &&
                        std::all_of(entries.begin(), entries.end(), [](const NodeEniAttachment& e) {
                          return e.status == "attached";
                        });
  return attached ? "Attached" : "Pending";
}

std::string nodeEniAttachmentName(const std::string& nodeEni, const std::string& node) {
  std::string joined = nodeEni + "." + node;
  if (joined.size() <= kMaxName) return joined;
  std::string prefix = joined.substr(0, kMaxName - 17);
  // A name part may not end in '.' or '-'.
  while (!prefix.empty() && (prefix.back() == '.' || prefix.back() == '-')) prefix.pop_back();
  return prefix + "." + hash16(joined);
}

Json::Value encodeNodeEniAttachment(const NodeEniAttachmentObject& o, const std::string& now) {
  Json::Value object;
  object["apiVersion"] = kApiVersion;
  object["kind"] = "NodeENIAttachment";
  object["metadata"] = encodeMetadata(o);
  Json::Value& spec = object["spec"];
  spec["nodeENI"] = o.nodeEni;
  spec["nodeENIUID"] = o.nodeEniUid;
  spec["nodeName"] = o.nodeName;
  setIfAny(spec, "instanceID", o.instanceId);
  Json::Value& status = object["status"];
  status["phase"] = o.phase();
  const std::size_t kept = std::min(o.entries.size(), kMaxAttachmentEntries);
  status["enis"] = static_cast<Json::UInt64>(kept);
  status["attachments"] = Json::Value(Json::arrayValue);
  for (std::size_t i = 0; i < kept; ++i) status["attachments"].append(encodeEntry(o.entries[i]));
  if (kept < o.entries.size())
    status["truncatedEntries"] = static_cast<Json::UInt64>(o.entries.size() - kept);
  setIfAny(status, "reason", o.reason.substr(0, kMaxAttachmentReason));
  status["lastUpdated"] = now;
  return object;
}

Result<NodeEniAttachmentObject> decodeNodeEniAttachment(const Json::Value& object) {
  auto meta = decodeMeta(object);
  if (!meta) return fail(meta.error());
  const Json::Value& spec = objectField(object, "spec");
  NodeEniAttachmentObject o;
  o.name = meta->name;
  o.nodeEni = stringField(spec, "nodeENI");
  o.nodeName = stringField(spec, "nodeName");
  if (o.nodeEni.empty() || o.nodeName.empty())
    return fail(ErrorCode::Invalid,
                "NodeENIAttachment " + meta->name + " has no spec.nodeENI or spec.nodeName");
  o.nodeEniUid = stringField(spec, "nodeENIUID");
  o.instanceId = stringField(spec, "instanceID");
  for (const auto& owner : arrayField(objectField(object, "metadata"), "ownerReferences")) {
    if (stringField(owner, "kind") == "Node") o.nodeUid = stringField(owner, "uid");
  }
  const Json::Value& status = objectField(object, "status");
  for (const auto& e : arrayField(status, "attachments")) o.entries.push_back(decodeEntry(e));
  o.reason = stringField(status, "reason");
  return o;
}

void NodeEniAttachmentWriter::load(Callback<void> done) {
  ListOptions options;
  options.fieldSelector = "spec.nodeName=" + nodeName_;
  ++inFlight_;
  kube_.list(ResourceKind::nodeEniAttachments(), "", options,
             [this, done = std::move(done)](Result<ObjectList> list) {
               --inFlight_;
               if (!list) return done(fail(list.error()));
               own_.clear();
               for (const auto& item : list->items) {
                 auto o = decodeNodeEniAttachment(item);
                 if (o && o->nodeName == nodeName_) own_[o->nodeEni] = std::move(*o);
               }
               loaded_ = true;
               done({});
             });
}

bool NodeEniAttachmentWriter::apply(NodeEniAttachmentObject object, Callback<void> done) {
  object.nodeName = nodeName_;
  object.name = nodeEniAttachmentName(object.nodeEni, nodeName_);
  if (object.reason.size() > kMaxAttachmentReason) object.reason.resize(kMaxAttachmentReason);
  if (object.entries.size() > kMaxAttachmentEntries) object.entries.resize(kMaxAttachmentEntries);
  auto it = own_.find(object.nodeEni);
  if (it != own_.end() && it->second == object) return false;
  const Json::Value body = encodeNodeEniAttachment(object, formatTimestamp(clock_.wallSeconds()));
  ++writes_;
  ++inFlight_;
  kube_.patch(attachmentRef(object.name), PatchType::Apply, body, PatchOptions{kFieldManager, true},
              finish(false, std::move(done), [this, object] { own_[object.nodeEni] = object; }));
  return true;
}

bool NodeEniAttachmentWriter::remove(const std::string& nodeEni, Callback<void> done) {
  auto it = own_.find(nodeEni);
  if (it == own_.end()) return false;
  ++writes_;
  ++inFlight_;
  kube_.remove(attachmentRef(it->second.name),
               finish(true, std::move(done), [this, nodeEni] { own_.erase(nodeEni); }));
  return true;
}

void NodeEniAttachmentWriter::remaining(const std::string& nodeEniUid,
                                        Callback<std::optional<NodeEniAttachmentObject>> done) {
  ListOptions options;
  options.labelSelector = std::string(kNodeEniUidLabel) + "=" + nodeEniUid;
  options.limit = 1;
  ++inFlight_;
  kube_.list(ResourceKind::nodeEniAttachments(), "", options,
             [this, done = std::move(done)](Result<ObjectList> list) {
               --inFlight_;
               if (!list) return done(fail(list.error()));
               for (const auto& item : list->items) {
                 auto o = decodeNodeEniAttachment(item);
                 if (!o) return done(fail(o.error()));
                 return done(std::optional<NodeEniAttachmentObject>(std::move(*o)));
               }
               done(std::optional<NodeEniAttachmentObject>());
             });
}

void NodeEniAttachmentWriter::remainingAll(const std::string& nodeEniUid, int limit,
                                           Callback<Remaining> done) {
  ListOptions options;
  options.labelSelector = std::string(kNodeEniUidLabel) + "=" + nodeEniUid;
  options.limit = limit;
  ++inFlight_;
  kube_.list(ResourceKind::nodeEniAttachments(), "", options,
             [this, done = std::move(done)](Result<ObjectList> list) {
               --inFlight_;
               if (!list) return done(fail(list.error()));
               Remaining out;
               for (const auto& item : list->items) {
                 auto o = decodeNodeEniAttachment(item);
                 if (o) out.objects.push_back(std::move(*o));
               }
               if (list->remainingItemCount > 0)
                 out.more = list->remainingItemCount;
               else if (list->more)
                 out.more = 1;
               done(std::move(out));
             });
}

void NodeEniAttachmentWriter::removeOrphan(const std::string& name, Callback<void> done) {
  ++writes_;
  ++inFlight_;
  kube_.remove(attachmentRef(name), finish(true, std::move(done), [] {}));
}

Callback<Json::Value> NodeEniAttachmentWriter::finish(bool goneIsDone, Callback<void> done,
                                                      std::function<void()> onSuccess) {
  return [this, goneIsDone, done = std::move(done),
          onSuccess = std::move(onSuccess)](Result<Json::Value> r) {
    --inFlight_;
    if (!r && !(goneIsDone && r.error().code == ErrorCode::NotFound)) return done(fail(r.error()));
    onSuccess();
    done({});
  };
}

}  // namespace eni
