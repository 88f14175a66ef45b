#include "tests/support/virtual_node.h"

#include <algorithm>
#include <memory>

#include "agent/base/json.h"
#include "agent/enimanager/eni_planner.h"
#include "agent/enimanager/nodeeni_bookkeeping.h"
#include "agent/enimanager/nodeeni_deletion.h"

namespace eni::testing {

VirtualNode::VirtualNode(KubeApi& kube, const Clock& clock, std::string node, std::string nodeUid,
                         bool oldDesign)
    : kube_(kube),
      node_(std::move(node)),
      nodeUid_(std::move(nodeUid)),
      oldDesign_(oldDesign),
      records_(kube, clock, node_),
      status_(kube, clock, node_) {}

void VirtualNode::record(const NodeEni& nodeEni, std::vector<NodeEniAttachment> entries,
                         std::function<void(bool)> done) {
  auto left = std::make_shared<int>(1);
  auto ok = std::make_shared<bool>(true);
  auto one = [left, ok, done] {
    if (--*left == 0) done(*ok);
  };
  auto written = [ok, one](bool success) {
    *ok = *ok && success;
    one();
  };
  if (oldDesign_) {
    // As the agent did: its status apply, then the finalizer on the NodeENI the answer showed.
    ++writes_;
    const bool sent =
        status_.applyEntries(nodeEni.meta.name, entries, [this, done](Result<NodeEni> r) {
          if (!r) {
            lastError_ =
                std::string(toString(r.error().code)) + " " + std::to_string(r.error().httpStatus);
            return done(false);
          }
          const auto& held = r->meta.finalizers;
          if (std::find(held.begin(), held.end(), kNodeEniFinalizer) != held.end())
            return done(true);
          ++writes_;
          status_.setFinalizer(*r, kNodeEniFinalizer, true,
                               [done](Result<NodeEni>) { done(true); });
        });
    if (!sent) done(true);
    return;
  } else {
    BookkeepingInput in;
    in.nodeName = node_;
    in.nodeUid = nodeUid_;
    in.nodeEnis = {nodeEni};
    in.entries[nodeEni.meta.name] = std::move(entries);
    in.own = records_.own();
    BookkeepingPlan plan = planBookkeeping(in);
    for (auto& o : plan.apply) {
      ++*left;
      const bool sent = records_.apply(std::move(o), [this, written](Result<void> r) {
        if (!r) {
          lastError_ =
              std::string(toString(r.error().code)) + " " + std::to_string(r.error().httpStatus);
        }
        written(static_cast<bool>(r));
      });
      if (!sent) written(true);
    }
    if (plan.addFinalizer.empty()) return one();
  }
  const auto& held = nodeEni.meta.finalizers;
  if (std::find(held.begin(), held.end(), kNodeEniFinalizer) != held.end()) return one();
  ++writes_;
  status_.setFinalizer(nodeEni, kNodeEniFinalizer, true,
                       [this, name = nodeEni.meta.name, one](Result<NodeEni> r) {
                         if (!r) return one();
                         status_.markAttachmentsRecorded(name, [one](Result<NodeEni>) { one(); });
                         ++writes_;
                       });
}

void VirtualNode::cleanUp(const NodeEni& nodeEni, std::function<void(bool)> done) {
  if (oldDesign_) {
    ++writes_;
    const bool sent = status_.applyEntries(nodeEni.meta.name, {}, [this, done](Result<NodeEni> r) {
      if (!r || !r->attachments.empty()) return done(false);
      removeFinalizer(r->meta.name, done);
    });
    if (!sent) {
      --writes_;
      removeFinalizer(nodeEni.meta.name, done);  // its entries went before: the last one left?
    }
    return;
  }
  const bool sent = records_.remove(nodeEni.meta.name, [this, nodeEni, done](Result<void> r) {
    if (!r) return done(false);
    checkRemaining(nodeEni, done);
  });
  if (!sent) checkRemaining(nodeEni, done);
}

// The agent's own deletion check (nodeeni_deletion.h); only a node with nothing left of the
// NodeENI removes the finalizer.
void VirtualNode::checkRemaining(const NodeEni& nodeEni, std::function<void(bool)> done) {
  eni::checkRemaining(kube_, records_, node_, nodeEni.meta.uid,
                      [this, name = nodeEni.meta.name, done](const RemainingAnswer& a) {
                        if (a.outcome != RemainingAnswer::Outcome::NoneLeft) return done(false);
                        removeFinalizer(name, done);
                      });
}

void VirtualNode::removeFinalizer(const std::string& name, std::function<void(bool)> done) {
  // An agent's copy is its watch's; here the current version, read once.
  kube_.get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""}, [this, done](Result<Json::Value> r) {
    if (!r) return done(false);
    auto n = decodeNodeEni(*r);
    if (!n) return done(false);
    ++writes_;
    status_.setFinalizer(*n, kNodeEniFinalizer, false,
                         [done](Result<NodeEni> u) { done(static_cast<bool>(u)); });
  });
}

}  // namespace eni::testing
