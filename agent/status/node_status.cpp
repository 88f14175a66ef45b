#include "agent/status/node_status.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "agent/base/json.h"
#include "agent/base/strings.h"

namespace eni {
namespace {

PodStatus podOf(const std::string& key, const PodRecord& record) {
  PodStatus pod;
  if (const auto slash = key.find('/'); slash != std::string::npos) {
    pod.ns = key.substr(0, slash);
    pod.name = key.substr(slash + 1);
  } else {
    pod.name = key;
  }
  pod.uid = record.uid;
  pod.ip = record.ip;
  return pod;
}

const LinkInfo* findLink(const std::vector<LinkInfo>& links, const EniStatus& eni) {
  // The MAC is the truth; a recorded name is only a fallback for state written without a MAC,
  // since interface names can be reused by another link.
  for (const auto& link : links) {
    if (!eni.mac.empty() && lower(link.mac) == eni.mac) return &link;
  }
  if (!eni.mac.empty() || eni.interfaceName.empty()) return nullptr;
  for (const auto& link : links) {
    if (link.name == eni.interfaceName) return &link;
  }
  return nullptr;
}

std::string orDash(const std::string& text) { return text.empty() ? "-" : text; }

std::string joinTags(const std::map<std::string, std::string>& tags) {
  std::string out;
  for (const auto& [key, value] : tags) {
    if (!out.empty()) out += ",";
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

std::string joinPods(const std::vector<PodStatus>& pods) {
  std::string out;
  for (const auto& pod : pods) {
    if (!out.empty()) out += ", ";
    out += pod.ns.empty() ? pod.name : pod.ns + "/" + pod.name;
    if (!pod.ip.empty()) out += " (" + pod.ip + ")";
  }
  return out;
}

std::string mtuText(const EniStatus& eni) {
  if (eni.mtu == 0)
    return eni.wantedMtu > 0 ? "- (want " + std::to_string(eni.wantedMtu) + ")" : "-";
  std::string out = std::to_string(eni.mtu);
  if (eni.wantedMtu > 0 && eni.wantedMtu != static_cast<std::int64_t>(eni.mtu))
    out += " (want " + std::to_string(eni.wantedMtu) + ")";
  return out;
}

}  // namespace

Result<NodeState> nodeStateOfNode(const Json::Value& node) {
  const std::string name = stringField(objectField(node, "metadata"), "name");
  const Json::Value& annotations = objectField(objectField(node, "metadata"), "annotations");
  const std::string text = stringField(annotations, kNodeStateAnnotation);
  if (text.empty()) {
    return fail(ErrorCode::NotFound,
                "node " + name + " has no " + kNodeStateAnnotation +
                    " annotation yet: the agent has not finished a first pass there (is it "
                    "running on that node, and is the node labelled eni-agent.io/enabled=true?)");
  }
  // With what changed since, on a node large enough to write it apart; an overlay that does not
  // apply (stale, until the agent removes it) is left out, as the agent leaves it out.
  auto state = decodeNodeState(text, stringField(annotations, kNodeStatePendingAnnotation));
  if (!state) {
    return fail(ErrorCode::Invalid, "node " + name + ", annotation " + kNodeStateAnnotation + ": " +
                                        state.error().message);
  }
  return state;
}

NodeStatus buildNodeStatus(const NodeState& state,
                           const std::optional<std::vector<LinkInfo>>& links) {
  NodeStatus status;
  status.instanceId = state.instanceId;
  std::map<std::string, EniStatus> rows;
  for (const auto& [id, record] : state.enis) {
    EniStatus& row = rows[id];
    row.eniId = id;
    row.mac = lower(record.mac);
    row.deviceIndex = record.deviceIndex;
    row.subnet = record.subnet;
    row.tags = record.tags;
    row.hash = record.hash;
    for (const auto& [key, pod] : record.pods) row.pods.push_back(podOf(key, pod));
    std::sort(row.pods.begin(), row.pods.end(), [](const PodStatus& a, const PodStatus& b) {
      return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
    });
  }
  for (const auto& a : state.attachments) {
    EniStatus& row = rows[a.eniId];
    row.eniId = a.eniId;
    row.nodeEni = a.nodeEni;
    row.attachmentId = a.attachmentId;
    row.attachmentState = std::string(toString(a.phase));
    row.recordedLink = a.link;
    if (a.dpdk) {
      row.dpdkDriver = a.dpdk->driver;
      row.dpdkPciAddress = a.dpdk->pciAddress;
    }
    row.wantedMtu = a.mtu;
    if (a.deviceIndex >= 0) row.deviceIndex = a.deviceIndex;
    if (row.mac.empty()) row.mac = lower(a.mac);
    if (row.interfaceName.empty()) row.interfaceName = a.interfaceName;
  }
  for (auto& [id, row] : rows) {
    if (!links) continue;  // stays "unknown"
    const LinkInfo* link = findLink(*links, row);
    if (link == nullptr) {
      row.link = row.dpdkDriver.empty() ? "missing" : "dpdk";
      continue;
    }
    row.interfaceName = link->name;
    row.link = link->adminUp() ? "up" : "down";
    row.operState = link->operstate;
    row.mtu = link->mtu;
  }
  for (auto& [id, row] : rows) status.enis.push_back(std::move(row));
  std::stable_sort(
      status.enis.begin(), status.enis.end(), [](const EniStatus& a, const EniStatus& b) {
        const auto ia =
            a.deviceIndex < 0 ? std::numeric_limits<std::int64_t>::max() : a.deviceIndex;
        const auto ib =
            b.deviceIndex < 0 ? std::numeric_limits<std::int64_t>::max() : b.deviceIndex;
        return ia < ib;  // ties keep the map's ENI ID order
      });
  return status;
}

std::string renderStatusTable(const NodeStatus& s) {
  std::string out;
  if (!s.node.empty()) out += "node " + s.node + ", ";
  out +=
      "instance " + orDash(s.instanceId) + ", " + s.mode + " mode, state from " + s.source + "\n";
  if (!s.linkNetns.empty()) out += "links in network namespace " + s.linkNetns + "\n";
  if (!s.linksError.empty()) out += "links unknown: " + s.linksError + "\n";
  if (s.enis.empty()) {
    out += "no ENIs recorded yet\n";
    return out;
  }
  out += "\n";
  std::vector<std::vector<std::string>> table;
  table.push_back({"ENI", "DEVICE", "INTERFACE", "LINK", "MTU", "NODEENI", "TAGS", "PODS"});
  for (const auto& e : s.enis) {
    table.push_back({e.eniId, e.deviceIndex < 0 ? "-" : std::to_string(e.deviceIndex),
                     orDash(e.interfaceName), e.link, mtuText(e), orDash(e.nodeEni),
                     orDash(joinTags(e.tags)), orDash(joinPods(e.pods))});
  }
  std::vector<std::size_t> widths(table.front().size(), 0);
  for (const auto& row : table) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : table) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

Json::Value statusJson(const NodeStatus& s) {
  Json::Value root(Json::objectValue);
  root["version"] = 1;
  root["mode"] = s.mode;
  root["node"] = s.node;
  root["source"] = s.source;
  root["instanceId"] = s.instanceId;
  root["linkNetns"] = s.linkNetns;
  root["linksError"] = s.linksError;
  Json::Value enis(Json::arrayValue);
  for (const auto& e : s.enis) {
    Json::Value v(Json::objectValue);
    v["eniId"] = e.eniId;
    v["deviceIndex"] =
        e.deviceIndex < 0 ? Json::Value() : Json::Value(static_cast<Json::Int64>(e.deviceIndex));
    v["mac"] = e.mac;
    v["subnet"] = e.subnet;
    v["interface"] = e.interfaceName;
    v["link"] = e.link;
    v["operState"] = e.operState;
    v["mtu"] = e.mtu == 0 ? Json::Value() : Json::Value(static_cast<Json::UInt>(e.mtu));
    v["wantedMtu"] =
        e.wantedMtu <= 0 ? Json::Value() : Json::Value(static_cast<Json::Int64>(e.wantedMtu));
    v["nodeEni"] = e.nodeEni;
    v["attachmentId"] = e.attachmentId;
    v["attachmentState"] = e.attachmentState;
    v["recordedLink"] = e.recordedLink;
    v["dpdkDriver"] = e.dpdkDriver;
    v["dpdkPCIAddress"] = e.dpdkPciAddress;
    Json::Value tags(Json::objectValue);
    for (const auto& [key, value] : e.tags) tags[key] = value;
    v["tags"] = tags;
    v["hash"] = e.hash;
    Json::Value pods(Json::arrayValue);
    for (const auto& p : e.pods) {
      Json::Value pod(Json::objectValue);
      pod["namespace"] = p.ns;
      pod["name"] = p.name;
      pod["uid"] = p.uid;
      pod["ip"] = p.ip;
      pods.append(pod);
    }
    v["pods"] = pods;
    enis.append(v);
  }
  root["enis"] = enis;
  return root;
}

}  // namespace eni
