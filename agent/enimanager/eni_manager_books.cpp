// The ENI manager's NodeENI bookkeeping: this node's NodeENIAttachment objects, the finalizer and
// the deletion protocol (nodeeni_bookkeeping.h decides; this file sends and handles answers).
#include <algorithm>

#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/enimanager/eni_manager.h"
#include "agent/enimanager/nodeeni_deletion.h"

namespace eni {

void EniManager::loadRecords() {
  if (loading_ || records_.loaded()) return;
  loading_ = true;
  records_.load([this](Result<void> r) {
    loading_ = false;
    if (r) return markDirty();
    logWarn("cannot read this node's NodeENIAttachment objects, will retry",
            {{"node", options_.nodeName}, {"error", r.error().describe()}});
    runAfter(options_.retryDelay);
  });
}

BookkeepingInput EniManager::bookkeepingInput(const ManagerRecord& record) const {
  BookkeepingInput in;
  in.nodeName = options_.nodeName;
  in.nodeUid = nodeUid_;
  in.instanceId = instanceId_;
  in.labels = nodeLabels_;
  for (const auto& [name, nodeEni] : nodeEnis_) {
    std::optional<NodeEni> n = nodeEni;
    const std::string& version = nodeEni.meta.resourceVersion;
    if (auto it = finalizerTriedAt_.find(name);
        it != finalizerTriedAt_.end() && it->second == version)
      in.finalizerTried.insert(name);
    if (auto it = remainingCheckedAt_.find(name);
        (it != remainingCheckedAt_.end() && it->second == version) || checking_.count(name))
      in.remainingChecked.insert(name);
    in.nodeEnis.push_back(std::move(*n));
  }
  in.entries = entriesOf(record);
  for (const auto& p : record.problems) in.problems[p.nodeEni] = p.message;
  in.own = records_.own();
  in.removedOwn = removedOwn_;
  return in;
}

void EniManager::keepBooks(const ManagerRecord& record) {
  noteDeleteOnTermination();
  if (options_.dryRun || !records_.loaded()) return;
  BookkeepingPlan plan = planBookkeeping(bookkeepingInput(record));
  for (auto& o : plan.apply) writeRecord(std::move(o));
  for (const auto& name : plan.remove) removeRecord(name);
  for (const auto& name : plan.addFinalizer) addFinalizer(name);
  for (const auto& name : plan.markRecorded) markRecorded(name);
  for (const auto& name : plan.checkRemaining) checkRemaining(name);
  for (const auto& name : plan.dropOldEntries) dropOldEntries(name);
  checkCleanupDeadlines();
}

void EniManager::retryBooks(std::string_view what, const std::string& name, const Error& error) {
  logWarn(what, {{"nodeeni", name}, {"error", error.describe()}});
  runAfter(options_.retryDelay);
}

void EniManager::writeRecord(NodeEniAttachmentObject object) {
  const std::string name = object.nodeEni;
  records_.apply(std::move(object), [this, name](Result<void> r) {
    if (!r) retryBooks("cannot write this node's NodeENIAttachment, will retry", name, r.error());
  });
}

void EniManager::removeRecord(const std::string& name) {
  records_.remove(name, [this, name](Result<void> r) {
    if (!r) {
      return retryBooks("cannot delete this node's NodeENIAttachment, will retry", name, r.error());
    }
    removedOwn_.insert(name);
    // The deletion protocol: once this node's object is gone, see whether any node's remains.
    auto n = typedNodeEni(name);
    if (n && n->meta.deleting) checkRemaining(name);
  });
}

std::optional<NodeEni> EniManager::typedNodeEni(const std::string& name) const {
  auto it = nodeEnis_.find(name);
  if (it == nodeEnis_.end()) return std::nullopt;
  return it->second;
}

// Asked for once per version, by a node with an attached ENI: a fleet seeing the NodeENI without
// it sends at most one request each, and all but the first are refused (Conflict) at no write.
void EniManager::addFinalizer(const std::string& name) {
  auto n = typedNodeEni(name);
  if (!n) return;
  finalizerTriedAt_[name] = n->meta.resourceVersion;
  status_.setFinalizer(*n, kNodeEniFinalizer, true, [this, name](Result<NodeEni> r) {
    if (!r) {
      if (r.error().code != ErrorCode::Conflict && r.error().code != ErrorCode::NotFound)
        retryBooks("cannot add the NodeENI finalizer, will retry", name, r.error());
      return;
    }
    logInfo("added the NodeENI finalizer", {{"nodeeni", name}});
    // The node that added the finalizer also says where the per-node status is.
    status_.markAttachmentsRecorded(name, [name](Result<NodeEni> c) {
      if (!c) {
        logWarn("cannot write the NodeENI condition AttachmentsRecorded",
                {{"nodeeni", name}, {"error", c.error().describe()}});
      }
    });
  });
}

// A NodeENI whose finalizer another tool added (aws-multi-eni-controller) never had the condition
// written by the node that added it: a node with ENIs writes it, once per version, onto that
// version only, so of a fleet asking at once one write lands and the rest are refused.
void EniManager::markRecorded(const std::string& name) {
  auto n = typedNodeEni(name);
  if (!n) return;
  finalizerTriedAt_[name] = n->meta.resourceVersion;
  status_.markAttachmentsRecorded(
      name,
      [this, name](Result<NodeEni> r) {
        if (!r && r.error().code != ErrorCode::Conflict && r.error().code != ErrorCode::NotFound)
          retryBooks("cannot write the NodeENI condition AttachmentsRecorded, will retry", name,
                     r.error());
      },
      n->meta.resourceVersion);
}

void EniManager::checkRemaining(const std::string& name) {
  auto n = typedNodeEni(name);
  if (!n || !checking_.insert(name).second) return;
  remainingCheckedAt_[name] = n->meta.resourceVersion;
  eni::checkRemaining(kube_, records_, options_.nodeName, n->meta.uid,
                      [this, name](const RemainingAnswer& a) { onRemaining(name, a); });
}

void EniManager::onRemaining(const std::string& name, const RemainingAnswer& answer) {
  checking_.erase(name);
  // A node whose Node object is gone never removes its own object; the garbage collector would
  // (its ownerReference), but a cluster may run none, and a NodeENI deletion must not wait for it.
  for (const auto& o : answer.pruned) {
    logInfo("deleted a deleted node's NodeENIAttachment",
            {{"nodeeni", name}, {"node", o.nodeName}});
  }
  switch (answer.outcome) {
    case RemainingAnswer::Outcome::NoneLeft:
      return removeFinalizer(name);
    case RemainingAnswer::Outcome::LiveNodeLeft:
      return;  // checked at this version: that node's agent finishes the protocol
    case RemainingAnswer::Outcome::OwnLeft:
      // This node's own object still there: its removal is retried, and checks again.
      remainingCheckedAt_.erase(name);
      return;
    case RemainingAnswer::Outcome::Failed:
      remainingCheckedAt_.erase(name);
      return retryBooks(std::string(answer.failed) + ", will retry", name,
                        answer.error.value_or(Error{ErrorCode::Internal, "no error recorded"}));
  }
}

void EniManager::removeFinalizer(const std::string& name) {
  auto n = typedNodeEni(name);
  if (!n) return;
  status_.setFinalizer(*n, kNodeEniFinalizer, false, [this, name](Result<NodeEni> r) {
    if (r) return logInfo("removed the NodeENI finalizer", {{"nodeeni", name}});
    if (r.error().code == ErrorCode::NotFound) return;
    // Conflict: the NodeENI moved on (another node removed the finalizer, or an edit); the watch
    // brings the new version and the next pass checks again.
    remainingCheckedAt_.erase(name);
    if (r.error().code == ErrorCode::Conflict) return markDirty();
    retryBooks("cannot remove the NodeENI finalizer, will retry", name, r.error());
  });
}

// Entries an older agent wrote into status.attachments under this node's field manager: an empty
// apply under that manager takes them out, once, leaving other nodes' entries alone. Entries that
// another manager wrote (aws-multi-eni-controller's) survive the apply: the log says so, not that
// they went.
void EniManager::dropOldEntries(const std::string& name) {
  status_.applyEntries(name, {}, [this, name](Result<NodeEni> r) {
    if (r && std::any_of(r->attachments.begin(), r->attachments.end(),
                         [&](const NodeEniAttachment& a) { return a.nodeId == options_.nodeName; }))
      return logInfo(
          "the NodeENI's status.attachments keeps entries of this node that another tool wrote "
          "(aws-multi-eni-controller): they stay as they are and are not kept up to date; this "
          "node's attachments are in its NodeENIAttachment",
          {{"nodeeni", name}});
    if (r)
      return logInfo("removed this node's entries from the NodeENI's status.attachments",
                     {{"nodeeni", name}});
    if (r.error().code != ErrorCode::NotFound) {
      logWarn("cannot remove this node's old NodeENI status entries",
              {{"nodeeni", name}, {"error", r.error().describe()}});
    }
  });
}

// aws-multi-eni-controller let DEFAULT_DELETE_ON_TERMINATION override the spec; here the spec
// wins. Said once per NodeENI that selects this node and disagrees, so the difference is seen.
void EniManager::noteDeleteOnTermination() {
  if (!options_.legacyDefaultDeleteOnTermination) return;
  for (const auto& [name, n] : nodeEnis_) {
    if (n.meta.deleting || !selectorMatches(n.spec.nodeSelector, nodeLabels_)) continue;
    const std::string note = deleteOnTerminationNote(n, options_.legacyDefaultDeleteOnTermination);
    if (!note.empty() && dotNoted_.insert(name).second)
      logWarn(note, {{"nodeeni", name}, {"node", options_.nodeName}});
  }
}

// Every agent that sees a NodeENI being deleted keeps a deadline for it: its cleanup's start plus
// --max-cleanup-duration, plus this node's turn. Deletion normally completes long before; when it
// has not (a node whose agent is gone keeps its NodeENIAttachment), the first agent whose turn
// comes removes the finalizer. The removal is conditional on the NodeENI's resourceVersion, so of
// agents acting at once exactly one succeeds, and only that one reports it.
void EniManager::checkCleanupDeadlines() {
  if (options_.maxCleanupDuration.count() <= 0 || options_.dryRun) return;
  const std::int64_t nowMs = wallClock_.wallSeconds() * 1000;
  std::optional<std::int64_t> next;
  for (const auto& [name, n] : nodeEnis_) {
    const auto& f = n.meta.finalizers;
    if (!n.meta.deleting || std::find(f.begin(), f.end(), kNodeEniFinalizer) == f.end()) continue;
    const auto start = cleanupStart(n);
    if (!start) continue;
    const std::int64_t due =
        *start * 1000 + options_.maxCleanupDuration.count() +
        cleanupTurn(options_.nodeName, n.meta.uid, options_.maxCleanupDuration).count();
    if (due > nowMs) {
      next = std::min(next.value_or(due - nowMs), due - nowMs);
      continue;
    }
    auto tried = forcedAt_.find(name);
    if (forcing_.count(name) != 0 ||
        (tried != forcedAt_.end() && tried->second == n.meta.resourceVersion))
      continue;
    forceCleanup(name);
  }
  // The wall clock reads whole seconds: a second more, so the deadline has passed when it fires.
  if (next) cleanupTimer_.enable(Duration(*next + 1000));
}

void EniManager::forceCleanup(const std::string& name) {
  auto n = typedNodeEni(name);
  if (!n) return;
  forcing_.insert(name);
  forcedAt_[name] = n->meta.resourceVersion;
  records_.remainingAll(
      n->meta.uid, 100, [this, name](Result<NodeEniAttachmentWriter::Remaining> r) {
        auto now = typedNodeEni(name);
        if (!r || !now || !now->meta.deleting) {
          forcing_.erase(name);
          if (!r) {
            forcedAt_.erase(name);
            retryBooks("cannot list a timed-out NodeENI's NodeENIAttachments, will retry", name,
                       r.error());
          }
          return;
        }
        status_.setFinalizer(
            *now, kNodeEniFinalizer, false,
            [this, name, left = std::move(*r), nodeEni = *now](Result<NodeEni> done) {
              forcing_.erase(name);
              if (done) return reportCleanupTimeout(nodeEni, left);
              // Conflict: it changed (another agent removed the finalizer, say): the
              // watch brings the new version, and this node looks again.
              if (done.error().code == ErrorCode::Conflict ||
                  done.error().code == ErrorCode::NotFound)
                return;
              forcedAt_.erase(name);
              retryBooks("cannot remove a timed-out NodeENI's finalizer, will retry", name,
                         done.error());
            });
      });
}

void EniManager::reportCleanupTimeout(const NodeEni& nodeEni,
                                      const NodeEniAttachmentWriter::Remaining& left) {
  std::string nodes;
  std::string enis;
  for (const auto& o : left.objects) {
    nodes += (nodes.empty() ? "" : ",") + o.nodeName;
    for (const auto& e : o.entries) {
      if (!e.eniId.empty()) enis += (enis.empty() ? "" : ",") + o.nodeName + ":" + e.eniId;
    }
  }
  const std::string message =
      cleanupTimeoutMessage(options_.maxCleanupDuration, left.objects, left.more);
  events_.record(ObjectReference::nodeEni(nodeEni.meta), EventType::Warning, kCleanupTimeoutReason,
                 message);
  logWarn("the cleanup of a deleted NodeENI timed out: removed its finalizer",
          {{"nodeeni", nodeEni.meta.name},
           {"maxCleanupDuration", durationText(options_.maxCleanupDuration)},
           {"nodesLeftBehind", nodes},
           {"enisLeftBehind", enis},
           {"moreNodes", std::to_string(left.more)},
           {"reason", kCleanupTimeoutReason}});
}

}  // namespace eni
