#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/kube/reflector.h"

namespace eni {

/// This node's slice of the cluster: the pods scheduled to it (fieldSelector
/// spec.nodeName=<node>, in one namespace with --watch-namespace), its own Node object, and the
/// NodeENIs. Each is one Reflector. It is synced once all three initial lists succeeded; readiness
/// waits for that. Loop thread only.
class NodeView {
 public:
  struct Handlers {
    Reflector::OnChange pods;
    Reflector::OnChange node;
    Reflector::OnChange nodeEnis;
    std::function<void()> synced;  // once, when every initial list is in
  };

  /// `podNamespace` (--watch-namespace): only that namespace's pods are listed and watched (the
  /// namespaced path, so the API server filters); empty: every namespace.
  NodeView(KubeApi& api, Scheduler& scheduler, const std::string& nodeName, Handlers handlers,
           bool watchNodeEnis, const std::string& podNamespace = "");

  void start();
  void stop();
  bool synced() const;
  /// Synced, and every watch works (Reflector::live()).
  bool live() const;
  /// Why the view is not synced or not live, in the readiness form "<Code>: <detail>", or empty:
  /// "Syncing: initial list of pods in progress", "ListFailed: <error>" (the initial list
  /// failed), "WatchDown: watch of pods failed, re-opening: <error>".
  std::string waitingFor() const;
  std::uint64_t watchRestarts() const;

  const Reflector& pods() const { return *pods_; }
  const Reflector& node() const { return *node_; }
  const Reflector* nodeEnis() const { return nodeEnis_.get(); }

 private:
  std::vector<Reflector*> all() const;
  std::unique_ptr<Reflector> pods_;
  std::unique_ptr<Reflector> node_;
  std::unique_ptr<Reflector> nodeEnis_;
  std::function<void()> onSynced_;
  bool reportedSynced_ = false;
};

}  // namespace eni
