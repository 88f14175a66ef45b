#include "agent/state/node_state.h"

#include "agent/base/json.h"

namespace eni {

std::string_view toString(AttachmentPhase phase) {
  switch (phase) {
    case AttachmentPhase::Attached:
      return "attached";
    case AttachmentPhase::Kept:
      return "kept";
    case AttachmentPhase::Releasing:
      return "releasing";
    case AttachmentPhase::Detached:
      return "detached";
  }
  return "attached";
}

std::optional<AttachmentPhase> attachmentPhaseFrom(std::string_view word) {
  for (auto phase : {AttachmentPhase::Attached, AttachmentPhase::Kept, AttachmentPhase::Releasing,
                     AttachmentPhase::Detached}) {
    if (word == toString(phase)) return phase;
  }
  if (word == "removing") return AttachmentPhase::Releasing;  // host mode's older word
  return std::nullopt;
}

namespace {

Json::Value encodeEniRecord(const EniRecord& e) {
  Json::Value v;
  if (!e.mac.empty()) v["mac"] = e.mac;
  if (e.deviceIndex >= 0) v["deviceIndex"] = static_cast<Json::Int64>(e.deviceIndex);
  if (!e.subnet.empty()) v["subnet"] = e.subnet;
  Json::Value tags(Json::objectValue);
  for (const auto& [k, val] : e.tags) tags[k] = val;
  v["tags"].swap(tags);
  if (!e.hash.empty()) v["hash"] = e.hash;
  Json::Value pods(Json::objectValue);
  for (const auto& [key, p] : e.pods) {
    pods[key]["uid"] = p.uid;
    pods[key]["ip"] = p.ip;
  }
  v["pods"].swap(pods);
  if (!e.pendingHash.empty()) v["pendingHash"] = e.pendingHash;
  if (!e.pendingKeys.empty()) {
    Json::Value keys(Json::arrayValue);
    for (const auto& k : e.pendingKeys) keys.append(k);
    v["pendingKeys"].swap(keys);
  }
  return v;
}

Json::Value encodeAttachment(const AttachmentRecord& a) {
  Json::Value v;
  v["nodeEni"] = a.nodeEni;
  v["eni"] = a.eniId;
  v["attachmentId"] = a.attachmentId;
  v["deviceIndex"] = static_cast<Json::Int64>(a.deviceIndex);
  v["interface"] = a.interfaceName;
  v["mtu"] = static_cast<Json::Int64>(a.mtu);
  v["state"] = std::string(toString(a.phase));
  if (!a.link.empty()) v["link"] = a.link;
  if (!a.mac.empty()) v["mac"] = a.mac;
  if (!a.specHash.empty()) v["specHash"] = a.specHash;
  if (a.dpdk) {
    Json::Value d;
    d["pci"] = a.dpdk->pciAddress;
    d["driver"] = a.dpdk->driver;
    if (!a.dpdk->originalDriver.empty()) d["original"] = a.dpdk->originalDriver;
    if (!a.dpdk->resourceName.empty()) d["resource"] = a.dpdk->resourceName;
    v["dpdk"].swap(d);
  }
  return v;
}

Json::Value stringArray(const std::vector<std::string>& items) {
  Json::Value out(Json::arrayValue);
  for (const auto& item : items) out.append(item);
  return out;
}

}  // namespace

Result<std::string> encodeNodeState(const NodeState& state) {
  Json::Value root;
  root["version"] = NodeState::kVersion;
  root["instanceId"] = state.instanceId;
  Json::Value enis(Json::objectValue);
  for (const auto& [id, e] : state.enis) enis[id] = encodeEniRecord(e);
  root["enis"].swap(enis);
  Json::Value attachments(Json::arrayValue);
  for (const auto& a : state.attachments) attachments.append(encodeAttachment(a));
  root["attachments"].swap(attachments);
  if (!state.unownedEnis.empty()) root["unownedEnis"] = stringArray(state.unownedEnis);
  if (!state.creating.empty()) root["creating"] = stringArray(state.creating);
  std::string text = toJson(root);
  if (text.size() > NodeState::kMaxBytes) {
    return fail(ErrorCode::Invalid, "node state is " + std::to_string(text.size()) +
                                        " bytes, over the 64 KiB annotation budget");
  }
  return text;
}

namespace {

EniRecord decodeEniRecord(const Json::Value& v) {
  EniRecord e;
  e.mac = stringField(v, "mac");
  e.deviceIndex = intField(v, "deviceIndex", -1);
  e.subnet = stringField(v, "subnet");
  const Json::Value& tags = objectField(v, "tags");
  for (auto t = tags.begin(); t != tags.end(); ++t) {
    if (t->isString()) e.tags[t.name()] = t->asString();
  }
  e.hash = stringField(v, "hash");
  const Json::Value& pods = objectField(v, "pods");
  for (auto p = pods.begin(); p != pods.end(); ++p) {
    e.pods[p.name()] = PodRecord{stringField(*p, "uid"), stringField(*p, "ip")};
  }
  e.pendingHash = stringField(v, "pendingHash");
  for (const auto& k : arrayField(v, "pendingKeys")) {
    if (k.isString()) e.pendingKeys.push_back(k.asString());
  }
  // Written before the compact form: {"key": "value", ..., "eni-tagger.io/hash": "<hash>"}.
  const Json::Value& legacy = objectField(v, "pending");
  for (auto t = legacy.begin(); t != legacy.end(); ++t) {
    if (!t->isString()) continue;
    if (t.name() == "eni-tagger.io/hash")
      e.pendingHash = t->asString();
    else
      e.pendingKeys.push_back(t.name());
  }
  return e;
}

AttachmentRecord decodeAttachment(const Json::Value& a) {
  AttachmentRecord r;
  r.nodeEni = stringField(a, "nodeEni");
  r.eniId = stringField(a, "eni");
  r.attachmentId = stringField(a, "attachmentId");
  r.deviceIndex = intField(a, "deviceIndex", -1);
  r.interfaceName = stringField(a, "interface");
  r.mtu = intField(a, "mtu");
  // Agents before the split wrote the link's state ("Configured", ...) in place of "attached".
  const std::string state = stringField(a, "state");
  r.phase = attachmentPhaseFrom(state).value_or(AttachmentPhase::Attached);
  r.link = stringField(a, "link");
  if (r.link.empty() && !attachmentPhaseFrom(state)) r.link = state;
  r.mac = stringField(a, "mac");
  r.specHash = stringField(a, "specHash");
  if (const Json::Value& d = objectField(a, "dpdk"); !stringField(d, "pci").empty()) {
    r.dpdk = DeviceBinding{stringField(d, "pci"), stringField(d, "driver"),
                           stringField(d, "original"), stringField(d, "resource")};
  }
  return r;
}

std::vector<std::string> strings(const Json::Value& array) {
  std::vector<std::string> out;
  for (const auto& v : array) {
    if (v.isString()) out.push_back(v.asString());
  }
  return out;
}

}  // namespace

Result<NodeState> decodeNodeState(const std::string& text) {
  auto parsed = parseJson(text);
  if (!parsed) return fail(ErrorCode::Invalid, "node state: " + parsed.error().message);
  const Json::Value& root = *parsed;
  const std::int64_t version = intField(root, "version", 0);
  if (version > NodeState::kVersion) {
    return fail(ErrorCode::Conflict, "node state version " + std::to_string(version) +
                                         " was written by a newer eni-agent; this one reads 1.." +
                                         std::to_string(NodeState::kVersion));
  }
  if (version < 1) {
    return fail(ErrorCode::Invalid, "node state version " + std::to_string(version) +
                                        " is not one this agent reads (1.." +
                                        std::to_string(NodeState::kVersion) + ")");
  }
  NodeState state;
  state.instanceId = stringField(root, "instanceId");
  const Json::Value& enis = objectField(root, "enis");
  for (auto it = enis.begin(); it != enis.end(); ++it) state.enis[it.name()] = decodeEniRecord(*it);
  for (const auto& a : arrayField(root, "attachments")) {
    state.attachments.push_back(decodeAttachment(a));
  }
  state.unownedEnis = strings(arrayField(root, "unownedEnis"));
  state.creating = strings(arrayField(root, "creating"));
  return state;
}

}  // namespace eni
