#include "agent/enimanager/nodeeni_deletion.h"

#include <memory>

#include "agent/enimanager/nodeeni_bookkeeping.h"

namespace eni {
namespace {

// One check's state across its asynchronous steps; each step holds it (shared_from_this).
class RemainingCheck : public std::enable_shared_from_this<RemainingCheck> {
 public:
  RemainingCheck(KubeApi& kube, NodeEniAttachmentWriter& records, std::string nodeName,
                 std::string nodeEniUid, std::function<void(RemainingAnswer)> done)
      : kube_(kube),
        records_(records),
        nodeName_(std::move(nodeName)),
        nodeEniUid_(std::move(nodeEniUid)),
        done_(std::move(done)) {}

  void list() {
    records_.remaining(
        nodeEniUid_, [self = shared_from_this()](Result<std::optional<NodeEniAttachmentObject>> r) {
          if (!r) return self->fail("cannot list the NodeENI's NodeENIAttachments", r.error());
          self->step(*r, std::nullopt);
        });
  }

 private:
  void step(const std::optional<NodeEniAttachmentObject>& found, std::optional<bool> nodeGone) {
    answer_.found = found;
    const RemainingStep next = decideRemaining(nodeName_, found, nodeGone);
    if (next == RemainingStep::RemoveFinalizer) return finish(RemainingAnswer::Outcome::NoneLeft);
    // decideRemaining asks to check a node or prune an object only when one was found.
    if (next == RemainingStep::Wait || !found) {
      return finish(found && found->nodeName == nodeName_ ? RemainingAnswer::Outcome::OwnLeft
                                                          : RemainingAnswer::Outcome::LiveNodeLeft);
    }
    if (next == RemainingStep::CheckNode) return checkNode(*found);
    prune(*found);
  }

  void checkNode(const NodeEniAttachmentObject& found) {
    kube_.get(ObjectRef{ResourceKind::nodes(), "", found.nodeName, ""},
              [self = shared_from_this(), found](Result<Json::Value> r) {
                if (r) return self->step(found, false);
                if (r.error().code == ErrorCode::NotFound) return self->step(found, true);
                self->fail("cannot read a Node whose NodeENIAttachment remains", r.error());
              });
  }

  void prune(const NodeEniAttachmentObject& found) {
    records_.removeOrphan(found.name, [self = shared_from_this(), found](Result<void> r) {
      if (!r) return self->fail("cannot delete a deleted node's NodeENIAttachment", r.error());
      self->answer_.pruned.push_back(found);
      self->list();
    });
  }

  void fail(const char* what, const Error& error) {
    answer_.failed = what;
    answer_.error = error;
    finish(RemainingAnswer::Outcome::Failed);
  }

  void finish(RemainingAnswer::Outcome outcome) {
    answer_.outcome = outcome;
    auto done = std::move(done_);
    done(std::move(answer_));
  }

  KubeApi& kube_;
  NodeEniAttachmentWriter& records_;
  std::string nodeName_;
  std::string nodeEniUid_;
  std::function<void(RemainingAnswer)> done_;
  RemainingAnswer answer_;
};

}  // namespace

void checkRemaining(KubeApi& kube, NodeEniAttachmentWriter& records, const std::string& nodeName,
                    const std::string& nodeEniUid, std::function<void(RemainingAnswer)> done) {
  std::make_shared<RemainingCheck>(kube, records, nodeName, nodeEniUid, std::move(done))->list();
}

}  // namespace eni
