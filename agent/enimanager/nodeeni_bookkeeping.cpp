#include "agent/enimanager/nodeeni_bookkeeping.h"

#include <algorithm>

#include "agent/enimanager/eni_planner.h"

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
  if (!n.meta.deleting && attached && !hasFinalizer(n) && in.finalizerTried.count(name) == 0)
    plan.addFinalizer.push_back(name);
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

}  // namespace eni
