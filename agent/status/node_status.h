#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <json/value.h>

#include "agent/base/error.h"
#include "agent/state/node_state.h"
#include "netlink/link_dump.h"

// What `eni-agent status` shows: the node state the agent recorded, merged with the kernel's live
// view of the links. Pure functions: the command's composition root (agent/app) reads the state
// and dumps the links, these merge and render.
namespace eni {

/// One pod behind an ENI, from the node state's "namespace/name" key.
struct PodStatus {
  std::string ns;
  std::string name;
  std::string uid;
  std::string ip;
};

/// A link's state as status reports it: "up" (administratively up), "down", "missing" (no link
/// with the ENI's MAC or recorded name), "dpdk" (its device is bound to a DPDK driver, so it has
/// no kernel interface) or "unknown" (the links could not be read).
struct EniStatus {
  std::string eniId;
  std::int64_t deviceIndex = -1;  // -1: not known
  std::string mac;
  std::string subnet;
  std::string interfaceName;  // the live link's name, else the recorded one
  std::string link = "unknown";
  std::string operState;       // the kernel's operstate, when the link was found
  std::uint32_t mtu = 0;       // the live MTU, 0 when the link was not found
  std::int64_t wantedMtu = 0;  // the NodeENI's MTU, 0 when none was asked for
  std::string nodeEni;         // the NodeENI that asked for it; empty for pod ENIs
  std::string attachmentId;
  std::string attachmentState;  // the recorded lifecycle phase: attached, kept, releasing, detached
  std::string recordedLink;     // the link's state as the agent last recorded it (e.g. Configured)
  std::string dpdkDriver;       // the DPDK driver its device is bound to; empty when none
  std::string dpdkPciAddress;
  std::map<std::string, std::string> tags;  // tags the agent owns on it
  std::string hash;
  std::vector<PodStatus> pods;  // sorted by namespace, name
};

/// The whole report. `source` says where the state came from (the annotation or the file).
struct NodeStatus {
  std::string mode;  // "kubernetes" or "host"
  std::string node;  // the node name (Kubernetes mode)
  std::string source;
  std::string instanceId;
  std::string linkNetns;        // empty: the command's own namespace
  std::string linksError;       // why the links could not be read; empty when they were
  std::vector<EniStatus> enis;  // sorted by device index (unknown last), then ENI ID
};

/// The node state of a Node object (eni-agent.io/state, with eni-agent.io/state-pending applied
/// when it applies): NotFound when the node has none yet (the agent has not run there, or not
/// finished its first pass), Invalid when it cannot be read.
[[nodiscard]] Result<NodeState> nodeStateOfNode(const Json::Value& node);

/// Merges the recorded state and the live links (nullopt when they could not be read). One row
/// per ENI: pod ENIs (state.enis) and NodeENI attachments, joined on the ENI ID. A link belongs to
/// an ENI when its MAC matches; without a recorded MAC, the recorded interface name is used.
NodeStatus buildNodeStatus(const NodeState& state,
                           const std::optional<std::vector<LinkInfo>>& links);

/// The table for people: a header line, then one aligned row per ENI.
std::string renderStatusTable(const NodeStatus& status);

/// The JSON for scripts (documented in docs/operations.md; fields are only ever added):
/// {"version":1,"mode","node","source","instanceId","linkNetns","linksError",
///  "enis":[{"eniId","deviceIndex","mac","subnet","interface","link","operState","mtu",
///           "wantedMtu","nodeEni","attachmentId","attachmentState","recordedLink","dpdkDriver","dpdkPCIAddress",
///           "tags":{},"hash",
///           "pods":[{"namespace","name","uid","ip"}]}]}
Json::Value statusJson(const NodeStatus& status);

}  // namespace eni
