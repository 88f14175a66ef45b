#include "agent/kube/objects.h"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <initializer_list>

#include "agent/base/json.h"

namespace eni {
namespace {

std::map<std::string, std::string> stringMap(const Json::Value& object) {
  std::map<std::string, std::string> out;
  if (!object.isObject()) return out;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (it->isString()) out.emplace(it.name(), it->asString());
  }
  return out;
}

std::vector<std::string> stringList(const Json::Value& array) {
  std::vector<std::string> out;
  if (!array.isArray()) return out;
  for (const auto& v : array) {
    if (v.isString()) out.push_back(v.asString());
  }
  return out;
}

constexpr const char* kLastApplied = "kubectl.kubernetes.io/last-applied-configuration";

void pruneMeta(Json::Value& object) {
  Json::Value& meta = object["metadata"];
  if (!meta.isObject()) return;
  meta.removeMember("managedFields");
  if (meta["annotations"].isObject()) meta["annotations"].removeMember(kLastApplied);
}

// Keeps only `keep` of object[field], when it is an object.
void keepOnly(Json::Value& object, const char* field, std::initializer_list<const char*> keep) {
  if (!object.isMember(field)) return;
  const Json::Value& from = object[field];
  Json::Value kept(Json::objectValue);
  if (from.isObject()) {
    for (const char* name : keep) {
      if (from.isMember(name)) kept[name] = from[name];
    }
  }
  object[field] = std::move(kept);
}

}  // namespace

void prunePod(Json::Value& pod) {
  if (!pod.isObject()) return;
  pruneMeta(pod);
  keepOnly(pod, "spec", {"nodeName", "hostNetwork"});
  keepOnly(pod, "status", {"phase", "podIP", "podIPs", "conditions"});
}

void pruneNode(Json::Value& node) {
  if (!node.isObject()) return;
  pruneMeta(node);
  keepOnly(node, "spec", {"providerID"});
  node.removeMember("status");
}

Result<ObjectMeta> decodeMeta(const Json::Value& object, bool annotations) {
  const Json::Value& meta = objectField(object, "metadata");
  ObjectMeta out;
  out.name = stringField(meta, "name");
  if (out.name.empty()) return fail(ErrorCode::Invalid, "object without metadata.name");
  out.ns = stringField(meta, "namespace");
  out.uid = stringField(meta, "uid");
  out.resourceVersion = stringField(meta, "resourceVersion");
  out.labels = stringMap(objectField(meta, "labels"));
  if (annotations) out.annotations = stringMap(objectField(meta, "annotations"));
  out.finalizers = stringList(arrayField(meta, "finalizers"));
  out.deletionTimestamp = stringField(meta, "deletionTimestamp");
  out.deleting = !out.deletionTimestamp.empty();
  return out;
}

Result<Pod> decodePod(const Json::Value& object) {
  auto meta = decodeMeta(object);
  if (!meta) return fail(meta.error());
  Pod pod;
  pod.meta = std::move(*meta);
  const Json::Value& spec = objectField(object, "spec");
  const Json::Value& status = objectField(object, "status");
  pod.nodeName = stringField(spec, "nodeName");
  pod.hostNetwork = boolField(spec, "hostNetwork");
  pod.phase = stringField(status, "phase");
  for (const auto& entry : arrayField(status, "podIPs")) {
    const std::string ip = stringField(entry, "ip");
    if (!ip.empty()) pod.podIps.push_back(ip);
  }
  if (pod.podIps.empty()) {
    const std::string ip = stringField(status, "podIP");
    if (!ip.empty()) pod.podIps.push_back(ip);
  }
  for (const auto& entry : arrayField(status, "conditions")) {
    PodCondition c;
    c.type = stringField(entry, "type");
    if (c.type.empty()) continue;
    c.status = stringField(entry, "status");
    c.reason = stringField(entry, "reason");
    c.message = stringField(entry, "message");
    c.lastTransitionTime = stringField(entry, "lastTransitionTime");
    pod.conditions.push_back(std::move(c));
  }
  return pod;
}

const PodCondition* Pod::condition(const std::string& type) const {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

std::string Node::instanceId() const {
  const auto slash = providerId.rfind('/');
  std::string id = slash == std::string::npos ? providerId : providerId.substr(slash + 1);
  return id.rfind("i-", 0) == 0 ? id : std::string();
}

Result<Node> decodeNode(const Json::Value& object, bool annotations) {
  auto meta = decodeMeta(object, annotations);
  if (!meta) return fail(meta.error());
  Node node;
  node.meta = std::move(*meta);
  node.providerId = stringField(objectField(object, "spec"), "providerID");
  return node;
}

namespace {

NodeEniSpec decodeNodeEniSpec(const Json::Value& spec) {
  NodeEniSpec s;
  s.nodeSelector = stringMap(objectField(spec, "nodeSelector"));
  s.subnetId = stringField(spec, "subnetID");
  s.subnetIds = stringList(arrayField(spec, "subnetIDs"));
  s.subnetName = stringField(spec, "subnetName");
  s.subnetNames = stringList(arrayField(spec, "subnetNames"));
  s.securityGroupIds = stringList(arrayField(spec, "securityGroupIDs"));
  s.securityGroupNames = stringList(arrayField(spec, "securityGroupNames"));
  s.deviceIndex = intField(spec, "deviceIndex", 1);
  s.deleteOnTermination = boolField(spec, "deleteOnTermination", true);
  s.description = stringField(spec, "description");
  s.mtu = intField(spec, "mtu", 0);
  s.enableDpdk = boolField(spec, "enableDPDK", false);
  s.dpdkDriver = stringField(spec, "dpdkDriver");
  s.dpdkResourceName = stringField(spec, "dpdkResourceName");
  s.dpdkPciAddress = stringField(spec, "dpdkPCIAddress");
  return s;
}

NodeEniAttachment decodeNodeEniAttachment(const Json::Value& a) {
  NodeEniAttachment att;
  att.nodeId = stringField(a, "nodeID");
  att.instanceId = stringField(a, "instanceID");
  att.eniId = stringField(a, "eniID");
  att.attachmentId = stringField(a, "attachmentID");
  att.subnetId = stringField(a, "subnetID");
  att.subnetCidr = stringField(a, "subnetCIDR");
  att.deviceIndex = intField(a, "deviceIndex");
  att.mtu = intField(a, "mtu");
  att.status = stringField(a, "status");
  att.message = stringField(a, "message");
  att.lastUpdated = stringField(a, "lastUpdated");
  att.dpdkBound = boolField(a, "dpdkBound", false);
  att.dpdkDriver = stringField(a, "dpdkDriver");
  att.dpdkResourceName = stringField(a, "dpdkResourceName");
  att.dpdkPciAddress = stringField(a, "dpdkPCIAddress");
  return att;
}

}  // namespace

Result<NodeEni> decodeNodeEni(const Json::Value& object) {
  auto meta = decodeMeta(object);
  if (!meta) return fail(meta.error());
  NodeEni eni;
  eni.meta = std::move(*meta);
  const Json::Value& spec = objectField(object, "spec");
  eni.spec = decodeNodeEniSpec(spec);
  eni.specJson = toJson(spec);
  for (const auto& a : arrayField(objectField(object, "status"), "attachments"))
    eni.attachments.push_back(decodeNodeEniAttachment(a));
  for (const auto& c : arrayField(objectField(object, "status"), "conditions")) {
    if (const std::string type = stringField(c, "type"); !type.empty())
      eni.conditionTypes.push_back(type);
  }
  eni.source = std::make_shared<const Json::Value>(object);
  return eni;
}

std::string formatTimestamp(std::int64_t epochSeconds) {
  const std::time_t t = epochSeconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

std::optional<std::int64_t> parseTimestamp(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      consumed != 19 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  std::size_t i = 19;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  }
  std::int64_t offset = 0;
  const std::string zone = text.substr(i);
  if (zone == "Z" || zone == "z") {
    offset = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':' &&
             std::isdigit(static_cast<unsigned char>(zone[1])) &&
             std::isdigit(static_cast<unsigned char>(zone[2])) &&
             std::isdigit(static_cast<unsigned char>(zone[4])) &&
             std::isdigit(static_cast<unsigned char>(zone[5]))) {
    offset = (std::int64_t{std::stoi(zone.substr(1, 2))} * 60 + std::stoi(zone.substr(4, 2))) * 60;
    if (zone[0] == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) - offset;
}

}  // namespace eni
