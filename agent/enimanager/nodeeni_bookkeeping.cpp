#include "agent/enimanager/nodeeni_bookkeeping.h"

#include <algorithm>

#include "agent/eni/tags.h"
#include "agent/enimanager/eni_planner.h"
#include "agent/kube/nodeeni_status_writer.h"

namespace eni {
namespace {

NodeEniAttachment entryOf(const AttachmentRecord& r, const std::string& subnetId,
                          std::int64_t mtu) {
  NodeEniAttachment e;
  e.eniId = r.eniId;
  e.attachmentId = r.attachmentId;
  e.subnetId = subnetId;
  e.deviceIndex = r.deviceIndex;
  e.mtu = mtu;
  e.status = std::string(toString(r.phase));
  if (r.dpdk) {  // aws-multi-eni-controller's fields, which its users read
    e.dpdkBound = true;
    e.dpdkDriver = r.dpdk->driver;
    e.dpdkResourceName = r.dpdk->resourceName;
    e.dpdkPciAddress = r.dpdk->pciAddress;
  }
  return e;
}

bool hasFinalizer(const NodeEni& n) {
  return std::find(n.meta.finalizers.begin(), n.meta.finalizers.end(), kNodeEniFinalizer) !=
         n.meta.finalizers.end();
}

bool anyAttached(const std::vector<NodeEniAttachment>& entries) {
  return std::any_of(entries.begin(), entries.end(), [](const NodeEniAttachment& e) {
    return e.status == toString(AttachmentPhase::Attached);
  });
}

// This node's object for an existing NodeENI: what it must hold, or nullopt when it must not be.
std::optional<NodeEniAttachmentObject> wantedObject(const BookkeepingInput& in, const NodeEni& n) {
  auto entries = in.entries.find(n.meta.name);
  auto problem = in.problems.find(n.meta.name);
  const bool any = (entries != in.entries.end() && !entries->second.empty()) ||
                   (problem != in.problems.end() && !n.meta.deleting);
  if (!any) return std::nullopt;
  NodeEniAttachmentObject o;
  o.nodeEni = n.meta.name;
  o.nodeEniUid = n.meta.uid;
  o.nodeName = in.nodeName;
  o.nodeUid = in.nodeUid;
  o.instanceId = in.instanceId;
  if (entries != in.entries.end()) o.entries = entries->second;
  if (problem != in.problems.end() && !n.meta.deleting) o.reason = problem->second;
  o.name = nodeEniAttachmentName(o.nodeEni, o.nodeName);
  return o;
}

void planOne(const BookkeepingInput& in, const NodeEni& n, BookkeepingPlan& plan) {
  const std::string& name = n.meta.name;
  auto wanted = wantedObject(in, n);
  const bool hadObject = in.own.count(name) != 0;
  if (wanted) {
    auto it = in.own.find(name);
    if (it == in.own.end() || !(it->second == *wanted)) plan.apply.push_back(*wanted);
  } else if (hadObject) {
    plan.remove.push_back(name);
  }
  const bool attached = wanted && anyAttached(wanted->entries);
  if (!n.meta.deleting && attached && in.finalizerTried.count(name) == 0) {
    if (!hasFinalizer(n)) {
      plan.addFinalizer.push_back(name);
    } else if (std::find(n.conditionTypes.begin(), n.conditionTypes.end(),
                         kAttachmentsRecordedCondition) == n.conditionTypes.end()) {
      plan.markRecorded.push_back(name);
    }
  }
  const bool involved =
      in.removedOwn.count(name) != 0 || selectorMatches(n.spec.nodeSelector, in.labels);
  if (n.meta.deleting && hasFinalizer(n) && !wanted && !hadObject && involved &&
      in.remainingChecked.count(name) == 0)
    plan.checkRemaining.push_back(name);
  const bool oldEntries =
      std::any_of(n.attachments.begin(), n.attachments.end(),
                  [&](const NodeEniAttachment& a) { return a.nodeId == in.nodeName; });
  if (oldEntries) plan.dropOldEntries.push_back(name);
}

}  // namespace

std::map<std::string, std::vector<NodeEniAttachment>> entriesOf(const ManagerRecord& record) {
  std::map<std::string, std::vector<NodeEniAttachment>> out;
  for (const auto& a : record.attached) {
    out[a.record.nodeEni].push_back(entryOf(a.record, a.subnetId, a.mtu));
  }
  for (const auto& h : record.held) out[h.nodeEni].push_back(entryOf(h, "", h.mtu));
  return out;
}

BookkeepingPlan planBookkeeping(const BookkeepingInput& in) {
  BookkeepingPlan plan;
  std::set<std::string> present;
  for (const auto& n : in.nodeEnis) {
    present.insert(n.meta.name);
    planOne(in, n, plan);
  }
  // A NodeENI that is gone: its object goes once this node holds none of its ENIs.
  for (const auto& [name, object] : in.own) {
    if (present.count(name) != 0) continue;
    auto entries = in.entries.find(name);
    if (entries == in.entries.end() || entries->second.empty()) plan.remove.push_back(name);
  }
  return plan;
}

RemainingStep decideRemaining(const std::string& nodeName,
                              const std::optional<NodeEniAttachmentObject>& found,
                              std::optional<bool> nodeGone) {
  if (!found) return RemainingStep::RemoveFinalizer;
  // This node's own object: its removal is in flight or failed; the next pass checks again.
  if (found->nodeName == nodeName) return RemainingStep::Wait;
  if (!nodeGone) return RemainingStep::CheckNode;
  return *nodeGone ? RemainingStep::PruneOrphan : RemainingStep::Wait;
}

std::optional<std::int64_t> cleanupStart(const NodeEni& n) {
  if (auto it = n.meta.annotations.find(kOldCleanupStartAnnotation);
      it != n.meta.annotations.end()) {
    if (auto t = parseTimestamp(it->second)) return t;
  }
  if (n.meta.deletionTimestamp.empty()) return std::nullopt;
  return parseTimestamp(n.meta.deletionTimestamp);
}

Duration cleanupTurn(const std::string& nodeName, const std::string& nodeEniUid,
                     Duration maxCleanup) {
  const std::int64_t spread =
      std::min<std::int64_t>(maxCleanup.count() / 10, Duration(std::chrono::seconds(60)).count());
  if (spread <= 0) return Duration(0);
  const std::string hex = sha256Hex(nodeName + "|" + nodeEniUid, 6);
  return Duration(static_cast<std::int64_t>(std::stoull(hex, nullptr, 16) %
                                            static_cast<std::uint64_t>(spread)));
}

std::string durationText(Duration d) {
  const std::int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

namespace {

std::string enisText(const NodeEniAttachmentObject& o) {
  std::string out;
  std::size_t named = 0;
  for (const auto& e : o.entries) {
    if (e.eniId.empty()) continue;
    if (named == kCleanupEventEnis) {
      out += " and more";
      break;
    }
    out += (named++ == 0 ? "" : ", ") + e.eniId;
  }
  return named == 0 ? "no ENI recorded" : out;
}

}  // namespace

std::string cleanupTimeoutMessage(Duration maxCleanup,
                                  const std::vector<NodeEniAttachmentObject>& left,
                                  std::int64_t more) {
  std::string out = "cleanup did not complete within " + durationText(maxCleanup) +
                    " (--max-cleanup-duration); removed the finalizer. ";
  if (left.empty() && more <= 0) return out + "No node's NodeENIAttachment remained.";
  out += "Nodes left behind, whose agent never released their ENIs: ";
  std::size_t shown = 0;
  for (const auto& o : left) {
    if (shown == kCleanupEventNodes) break;
    out += (shown++ == 0 ? "" : "; ") + o.nodeName + " (" + enisText(o) + ")";
  }
  const std::int64_t rest =
      static_cast<std::int64_t>(left.size() - shown) + std::max<std::int64_t>(0, more);
  if (rest > 0) out += "; and " + std::to_string(rest) + " more node(s)";
  return out +
         ". Nobody else releases those ENIs: start eni-agent on those nodes (it releases them "
         "once it sees the NodeENI gone) or detach and delete them by hand.";
}

}  // namespace eni
