#include "agent/kube/node_view.h"

#include "agent/kube/objects.h"

namespace eni {

NodeView::NodeView(KubeApi& api, Scheduler& scheduler, const std::string& nodeName,
                   Handlers handlers, bool watchNodeEnis, const std::string& podNamespace) {
  auto noop = [](ChangeType, const Json::Value&) {};
  ListOptions podOptions;
  podOptions.fieldSelector = "spec.nodeName=" + nodeName;
  pods_ = std::make_unique<Reflector>(api, scheduler, ResourceKind::pods(), podNamespace,
                                      podOptions, handlers.pods ? handlers.pods : noop);
  ListOptions nodeOptions;
  nodeOptions.fieldSelector = "metadata.name=" + nodeName;
  node_ = std::make_unique<Reflector>(api, scheduler, ResourceKind::nodes(), "", nodeOptions,
                                      handlers.node ? handlers.node : noop);
  // The pods' and the node's copies keep only what the tagger and the ENI manager read. NodeENIs
  // are kept whole: the ENI manager writes their status back from its copy.
  pods_->setTransform(prunePod);
  node_->setTransform(pruneNode);
  if (watchNodeEnis) {
    nodeEnis_ =
        std::make_unique<Reflector>(api, scheduler, ResourceKind::nodeEnis(), "", ListOptions{},
                                    handlers.nodeEnis ? handlers.nodeEnis : noop);
  }
  onSynced_ = std::move(handlers.synced);
  for (auto* r : all()) {
    r->setOnSynced([this] {
      if (reportedSynced_ || !synced()) return;
      reportedSynced_ = true;
      if (onSynced_) onSynced_();
    });
  }
}

std::vector<Reflector*> NodeView::all() const {
  std::vector<Reflector*> out{pods_.get(), node_.get()};
  if (nodeEnis_) out.push_back(nodeEnis_.get());
  return out;
}

void NodeView::start() {
  for (auto* r : all()) r->start();
}

void NodeView::stop() {
  for (auto* r : all()) r->stop();
}

bool NodeView::synced() const {
  for (auto* r : all()) {
    if (!r->synced()) return false;
  }
  return true;
}

bool NodeView::live() const {
  for (auto* r : all()) {
    if (!r->live()) return false;
  }
  return true;
}

std::string NodeView::waitingFor() const {
  for (auto* r : all()) {
    const std::string& plural = r->kind().plural;
    if (!r->synced()) {
      return r->lastError().empty() ? "Syncing: initial list of " + plural + " in progress"
                                    : "ListFailed: list of " + plural + ": " + r->lastError();
    }
  }
  for (auto* r : all()) {
    if (!r->live())
      return "WatchDown: watch of " + r->kind().plural + " failed, re-opening: " + r->lastError();
  }
  return {};
}

std::uint64_t NodeView::watchRestarts() const {
  std::uint64_t n = 0;
  for (auto* r : all()) n += r->watchRestarts();
  return n;
}

}  // namespace eni
