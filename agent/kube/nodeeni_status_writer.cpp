#include "agent/kube/nodeeni_status_writer.h"

#include <algorithm>
#include <utility>

#include "agent/base/json.h"

namespace eni {
namespace {

void setIfAny(Json::Value& out, const char* key, const std::string& value) {
  if (!value.empty()) out[key] = value;
}

// An entry as the agent has always written it: an attached ENI carries its IDs, a failure its
// message; both their nodeID, deviceIndex (the list's keys) and status.
Json::Value encodeEntry(const std::string& node, const NodeEniAttachment& entry) {
  Json::Value e;
  e["nodeID"] = node;
  setIfAny(e, "instanceID", entry.instanceId);
  setIfAny(e, "eniID", entry.eniId);
  setIfAny(e, "attachmentID", entry.attachmentId);
  setIfAny(e, "subnetID", entry.subnetId);
  setIfAny(e, "subnetCIDR", entry.subnetCidr);
  e["deviceIndex"] = static_cast<Json::Int64>(entry.deviceIndex);
  if (entry.mtu > 0) e["mtu"] = static_cast<Json::Int64>(entry.mtu);
  setIfAny(e, "status", entry.status);
  setIfAny(e, "message", entry.message);
  return e;
}

ObjectRef nodeEniRef(const std::string& name, const std::string& subresource) {
  return ObjectRef{ResourceKind::nodeEnis(), "", name, subresource};
}

}  // namespace

bool NodeEniStatusWriter::applyEntries(const std::string& name,
                                       const std::vector<NodeEniAttachment>& entries,
                                       Callback<NodeEni> done) {
  Json::Value list(Json::arrayValue);
  for (const auto& entry : entries) list.append(encodeEntry(nodeName_, entry));
  const std::string text = toJson(list);
  if (auto it = applied_.find(name); it != applied_.end() && it->second == text) return false;
  const std::string now = formatTimestamp(clock_.wallSeconds());
  for (auto& e : list) e["lastUpdated"] = now;
  Json::Value apply;
  apply["apiVersion"] = "networking.k8s.aws/v1alpha1";
  apply["kind"] = "NodeENI";
  apply["metadata"]["name"] = name;
  apply["status"]["attachments"] = list;
  ++inFlight_;
  kube_.patch(nodeEniRef(name, "status"), PatchType::Apply, apply,
              PatchOptions{fieldManager_, true},
              [this, name, text, done = std::move(done)](Result<Json::Value> answer) {
                if (answer) applied_[name] = text;
                decodeAnswer(done)(std::move(answer));
              });
  return true;
}

void NodeEniStatusWriter::setFinalizer(const NodeEni& nodeEni, const std::string& finalizer,
                                       bool present, Callback<NodeEni> done) {
  const auto& held = nodeEni.meta.finalizers;
  const bool has = std::find(held.begin(), held.end(), finalizer) != held.end();
  if (has == present) return done(nodeEni);
  if (!nodeEni.source) {
    return done(fail(ErrorCode::Invalid, "NodeENI " + nodeEni.meta.name +
                                             " has no source object to update its finalizers"));
  }
  Json::Value updated = *nodeEni.source;
  Json::Value list(Json::arrayValue);
  for (const auto& f : held) {
    if (f != finalizer) list.append(f);
  }
  if (present) list.append(finalizer);
  updated["metadata"]["finalizers"] = list;
  ++inFlight_;
  kube_.update(nodeEniRef(nodeEni.meta.name, ""), updated,
               [this, done = std::move(done)](Result<Json::Value> answer) {
                 decodeAnswer(done)(std::move(answer));
               });
}

void NodeEniStatusWriter::pruneNode(const NodeEni& nodeEni, const std::string& deadNode,
                                    Callback<NodeEni> done) {
  if (!nodeEni.source) {
    return done(fail(ErrorCode::Invalid,
                     "NodeENI " + nodeEni.meta.name + " has no source object to prune its status"));
  }
  Json::Value updated = *nodeEni.source;
  Json::Value kept(Json::arrayValue);
  for (const auto& a : arrayField(objectField(updated, "status"), "attachments")) {
    if (stringField(a, "nodeID") != deadNode) kept.append(a);
  }
  updated["status"]["attachments"] = kept;
  ++inFlight_;
  kube_.update(nodeEniRef(nodeEni.meta.name, "status"), updated,
               [this, done = std::move(done)](Result<Json::Value> answer) {
                 decodeAnswer(done)(std::move(answer));
               });
}

void NodeEniStatusWriter::markAttachmentsRecorded(const std::string& name, Callback<NodeEni> done,
                                                  const std::string& resourceVersion) {
  Json::Value condition;
  condition["type"] = kAttachmentsRecordedCondition;
  condition["status"] = "True";
  condition["reason"] = "NodeENIAttachments";
  condition["message"] =
      "status.attachments is not written: each node records its attachments in its own "
      "NodeENIAttachment object (kubectl get nodeeniattachments "
      "--field-selector spec.nodeENI=" +
      name + ")";
  condition["lastTransitionTime"] = formatTimestamp(clock_.wallSeconds());
  Json::Value apply;
  apply["apiVersion"] = "networking.k8s.aws/v1alpha1";
  apply["kind"] = "NodeENI";
  apply["metadata"]["name"] = name;
  if (!resourceVersion.empty()) apply["metadata"]["resourceVersion"] = resourceVersion;
  apply["status"]["conditions"].append(condition);
  ++inFlight_;
  kube_.patch(nodeEniRef(name, "status"), PatchType::Apply, apply, PatchOptions{"eni-agent", true},
              decodeAnswer(std::move(done)));
}

Callback<Json::Value> NodeEniStatusWriter::decodeAnswer(Callback<NodeEni> done) {
  return [this, done = std::move(done)](Result<Json::Value> answer) {
    --inFlight_;
    if (!answer) return done(fail(answer.error()));
    auto decoded = decodeNodeEni(*answer);
    if (!decoded) {
      return done(fail(ErrorCode::Internal,
                       "the API server answered with no NodeENI: " + decoded.error().message));
    }
    done(std::move(*decoded));
  };
}

}  // namespace eni
