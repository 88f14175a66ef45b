#pragma once

#include <cstdint>
#include <map>
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
  bool deleting = false;  // deletionTimestamp is set
};

struct Pod {
  ObjectMeta meta;
  std::string nodeName;
  bool hostNetwork = false;
  std::string phase;                // Pending, Running, Succeeded, Failed, Unknown
  std::vector<std::string> podIps;  // status.podIPs, else status.podIP
  bool terminal() const { return phase == "Succeeded" || phase == "Failed"; }
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
};

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
  std::string lastUpdated;
};

struct NodeEni {
  ObjectMeta meta;
  NodeEniSpec spec;
  std::vector<NodeEniAttachment> attachments;
};

/// Decoders: Invalid when the value is not an object with metadata.name.
[[nodiscard]] Result<ObjectMeta> decodeMeta(const Json::Value& object);
[[nodiscard]] Result<Pod> decodePod(const Json::Value& object);
[[nodiscard]] Result<Node> decodeNode(const Json::Value& object);
[[nodiscard]] Result<NodeEni> decodeNodeEni(const Json::Value& object);

/// Pruners for the reflectors' local copies: they keep what the decoders above and the agent's
/// handlers read, and drop the rest, so a node's copy of its pods stays small. Both drop
/// metadata.managedFields and kubectl's last-applied-configuration annotation (a copy of the whole
/// object). prunePod keeps spec.nodeName and spec.hostNetwork, and status.phase, podIP, podIPs and
/// conditions; pruneNode keeps spec.providerID and drops the status (images, conditions, ...).
/// decodePod/decodeNode give the same result before and after.
void prunePod(Json::Value& pod);
void pruneNode(Json::Value& node);

}  // namespace eni
