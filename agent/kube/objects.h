#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <json/value.h>

#include "agent/base/error.h"

namespace eni {

/// The parts of metadata the agent reads. Decoding never throws; wrong types read as absent.
struct ObjectMeta {
  std::string name;
  std::string ns;
  std::string uid;
  std::string resourceVersion;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> finalizers;
  bool deleting = false;          // deletionTimestamp is set
  std::string deletionTimestamp;  // RFC 3339, as the API server set it; empty when not deleting
};

/// One entry of a pod's status.conditions.
struct PodCondition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  std::string lastTransitionTime;  // RFC 3339, as the API server holds it
  bool operator==(const PodCondition&) const = default;
};

struct Pod {
  ObjectMeta meta;
  std::string nodeName;
  bool hostNetwork = false;
  std::string phase;                // Pending, Running, Succeeded, Failed, Unknown
  std::vector<std::string> podIps;  // status.podIPs, else status.podIP
  std::vector<PodCondition> conditions;
  bool terminal() const { return phase == "Succeeded" || phase == "Failed"; }
  /// The condition of `type`, or nullptr.
  const PodCondition* condition(const std::string& type) const;
};

struct Node {
  ObjectMeta meta;
  std::string providerId;  // aws:///us-east-1a/i-0123...
  /// The instance ID at the end of providerID, or empty.
  std::string instanceId() const;
};

struct NodeEniSpec {
  std::map<std::string, std::string> nodeSelector;
  std::string subnetId;
  std::vector<std::string> subnetIds;
  std::string subnetName;
  std::vector<std::string> subnetNames;
  std::vector<std::string> securityGroupIds;
  std::vector<std::string> securityGroupNames;
  std::int64_t deviceIndex = 1;
  bool deleteOnTermination = true;
  std::string description;
  std::int64_t mtu = 0;  // 0: leave the MTU alone
  /// aws-multi-eni-controller's DPDK fields. This version binds nothing: a NodeENI with
  /// enableDpdk is refused (desiredEnis()); the others are decoded for that refusal's message.
  bool enableDpdk = false;
  std::string dpdkDriver;
  std::string dpdkResourceName;
  std::string dpdkPciAddress;
};

/// One entry of a NodeENI's status.attachments: one ENI of one node, or one node's failure to
/// get it (status "failed" and a message, no ENI).
struct NodeEniAttachment {
  std::string nodeId;
  std::string instanceId;
  std::string eniId;
  std::string attachmentId;
  std::string subnetId;
  std::string subnetCidr;
  std::int64_t deviceIndex = 0;
  std::int64_t mtu = 0;
  std::string status;
  std::string message;
  std::string lastUpdated;
  /// aws-multi-eni-controller's DPDK entries, as its agents wrote them (this version writes none).
  bool dpdkBound = false;
  std::string dpdkDriver;
  std::string dpdkResourceName;
  std::string dpdkPciAddress;
  bool operator==(const NodeEniAttachment&) const = default;
};

/// A NodeENI as the API server last showed it. Logic reads the typed fields; `source` is there for
/// NodeEniStatusWriter alone, whose whole-object updates (finalizers, a dead node's prune) must
/// send back every field, including those this struct does not model (labels, annotations,
/// owners). Copies are cheap: the source is shared and never changed.
struct NodeEni {
  ObjectMeta meta;
  NodeEniSpec spec;
  /// The spec as served, in compact JSON (toJson): what a spec fingerprint hashes, so a
  /// fingerprint does not change when this struct learns a new field.
  std::string specJson;
  std::vector<NodeEniAttachment> attachments;  // status.attachments, every node's
  std::vector<std::string> conditionTypes;     // status.conditions' types
  std::shared_ptr<const Json::Value> source;   // the decoded object; null when built by hand
};

/// Decoders: Invalid when the value is not an object with metadata.name.
/// Without `annotations`, ObjectMeta::annotations stays empty: a reader of labels need not copy
/// a Node's annotations, whose node state is tens of KiB.
[[nodiscard]] Result<ObjectMeta> decodeMeta(const Json::Value& object, bool annotations = true);
[[nodiscard]] Result<Pod> decodePod(const Json::Value& object);
[[nodiscard]] Result<Node> decodeNode(const Json::Value& object, bool annotations = true);
[[nodiscard]] Result<NodeEni> decodeNodeEni(const Json::Value& object);

/// Pruners for the reflectors' local copies: they keep what the decoders above and the agent's
/// handlers read, and drop the rest, so a node's copy of its pods stays small. Both drop
/// metadata.managedFields and kubectl's last-applied-configuration annotation (a copy of the whole
/// object). prunePod keeps spec.nodeName and spec.hostNetwork, and status.phase, podIP, podIPs and
/// conditions; pruneNode keeps spec.providerID and drops the status (images, conditions, ...).
/// decodePod/decodeNode give the same result before and after.
void prunePod(Json::Value& pod);
void pruneNode(Json::Value& node);

/// `epochSeconds` as an API timestamp, RFC 3339 in UTC: "2026-11-23T09:00:00Z".
std::string formatTimestamp(std::int64_t epochSeconds);
/// An RFC 3339 time ("2026-11-23T09:00:00Z", fractions and a numeric offset allowed) in epoch
/// seconds; nullopt when `text` is not one.
std::optional<std::int64_t> parseTimestamp(const std::string& text);

}  // namespace eni
