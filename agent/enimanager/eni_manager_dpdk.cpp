// The ENI manager's DPDK part: binding the devices of ENIs whose NodeENI has enableDPDK, and giving
// them back before a release.
#include <memory>

#include "agent/base/log.h"
#include "agent/base/strings.h"
#include "agent/enimanager/eni_manager.h"

namespace eni {
namespace {

PciBinding pciBinding(const DeviceBinding& d) { return {d.pciAddress, d.driver, d.originalDriver}; }

}  // namespace

// The interface the kernel shows for the ENI, by its MAC; "" before it appears (or once it left).
std::string EniManager::linkNameOf(const std::string& eniId) const {
  if (links_ == nullptr) return "";
  auto mac = macOf_.find(eniId);
  if (mac == macOf_.end()) return "";
  auto link = links_->links().find(lower(mac->second));
  if (link == links_->links().end() || link->second.state == LinkState::Gone) return "";
  return link->second.name;
}

std::string EniManager::oldPciAddressOf(const AttachmentRecord& record) const {
  auto n = nodeEnis_.find(record.nodeEni);
  if (n == nodeEnis_.end()) return "";
  for (const auto& a : n->second.attachments) {
    if (a.nodeId == options_.nodeName && a.eniId == record.eniId && a.dpdkBound &&
        validPciAddress(a.dpdkPciAddress))
      return a.dpdkPciAddress;
  }
  return "";
}

// Called when a pass ends and when a link changes: an attached ENI of a NodeENI with enableDPDK
// gets its device bound once its interface is known; one whose NodeENI dropped enableDPDK gets it
// back. A bind that failed is tried again by the next pass when it may get past the failure, else
// only after the NodeENI changes or at the drift check.
void EniManager::bindDevices() {
  if (dpdk_ == nullptr || options_.dryRun) return;
  const bool retryAll = bindRetryDue_;
  bindRetryDue_ = false;
  for (const auto& r : attachments_) {
    auto n = nodeEnis_.find(r.nodeEni);
    const bool wanted = r.phase == AttachmentPhase::Attached && n != nodeEnis_.end() &&
                        !n->second.meta.deleting && n->second.spec.enableDpdk;
    if (binding_.count(r.eniId) != 0 || givingBack_.count(r.eniId) != 0) continue;
    if (bound_.count(r.eniId) != 0) {
      if (!wanted && n != nodeEnis_.end() && !n->second.spec.enableDpdk) {
        giveBackDevice(r.eniId, [this](const std::string& why) {
          if (why.empty()) markDirty();  // its link is managed again
        });
      }
      continue;
    }
    if (!wanted) {
      bindFailures_.erase(r.eniId);
      continue;
    }
    auto failed = bindFailures_.find(r.eniId);
    if (failed != bindFailures_.end() && !failed->second.retry && !retryAll) continue;
    bindDevice(r, n->second.spec);
  }
}

void EniManager::bindDevice(const AttachmentRecord& record, const NodeEniSpec& spec) {
  DpdkRequest request{linkNameOf(record.eniId), spec.dpdkPciAddress, spec.dpdkDriver,
                      spec.dpdkResourceName};
  // An ENI aws-multi-eni-controller bound has no interface left: its status entry names the device.
  if (request.pciAddress.empty()) request.pciAddress = oldPciAddressOf(record);
  // The link's event (onLinksChanged) calls again once the kernel shows the interface.
  if (request.pciAddress.empty() && request.interfaceName.empty()) return;
  binding_.insert(record.eniId);
  auto result = std::make_shared<Result<PciBinding>>(fail(ErrorCode::Internal, "not run"));
  devicesExecutor_.run(
      [this, request, result] { *result = dpdk_->bind(request); },
      [this, eni = record.eniId, owner = record.nodeEni, result] { onBound(eni, owner, *result); });
}

void EniManager::onBound(const std::string& eniId, const std::string& owner,
                         const Result<PciBinding>& r) {
  binding_.erase(eniId);
  if (!r) {
    const std::string message = "cannot bind the device of " + eniId +
                                " for DPDK: " + r.error().message +
                                (r.error().retryable() ? "; will retry" : "");
    logWarn("cannot bind an ENI's device for DPDK",
            {{"eni", eniId}, {"nodeeni", owner}, {"error", r.error().describe()}});
    bindFailures_[eniId] = {owner, message, r.error().retryable()};
    // The next pass reports it (status entry, Warning event); a retryable one is tried again then.
    if (r.error().retryable()) return runAfter(options_.retryDelay);
    return markDirty();
  }
  bindFailures_.erase(eniId);
  auto n = nodeEnis_.find(owner);
  const std::string resource = n == nodeEnis_.end() ? "" : n->second.spec.dpdkResourceName;
  bound_[eniId] = DeviceBinding{r->pciAddress, r->driver, r->originalDriver, resource};
  logInfo("bound an ENI's device for DPDK", {{"eni", eniId},
                                             {"nodeeni", owner},
                                             {"pci", r->pciAddress},
                                             {"driver", r->driver},
                                             {"was", r->originalDriver}});
  // The interface left with its driver: that is not drift, so the link is no longer managed.
  if (auto mac = macOf_.find(eniId); links_ != nullptr && mac != macOf_.end())
    links_->unmanage(lower(mac->second));
  markDirty();  // the next pass records the binding: node state, status entry
}

void EniManager::giveBackDevice(const std::string& eniId, std::function<void(std::string)> then) {
  auto bound = bound_.find(eniId);
  if (bound == bound_.end() || dpdk_ == nullptr) return then("");
  givingBack_.insert(eniId);
  auto result = std::make_shared<Result<void>>(fail(ErrorCode::Internal, "not run"));
  devicesExecutor_.run(
      [this, binding = pciBinding(bound->second), result] { *result = dpdk_->release(binding); },
      [this, eniId, result, then = std::move(then)] {
        givingBack_.erase(eniId);
        if (!*result) {
          auto b = bound_.find(eniId);
          const std::string to = b == bound_.end() || b->second.originalDriver.empty()
                                     ? "the kernel's driver"
                                     : b->second.originalDriver;
          return then("cannot give the device of " + eniId + " back to " + to + ": " +
                      result->error().message + "; the ENI stays attached until it is");
        }
        logInfo("gave an ENI's device back from DPDK", {{"eni", eniId}});
        bound_.erase(eniId);
        then("");
      });
}

// The pass's records carry the bindings (node state, status entries) and the binds that failed
// (problems of their NodeENIs). Bindings of ENIs no longer recorded at all are forgotten.
void EniManager::recordDevices(ManagerRecord& record) {
  if (dpdk_ == nullptr) return;
  std::map<std::string, std::string> attachmentBefore;  // ENI ID -> its recorded attachment
  for (const auto& r : recorded_.attachments) attachmentBefore[r.eniId] = r.attachmentId;
  std::set<std::string> recorded;
  for (auto& a : record.attached) {
    // Attached again (the drift check repaired a detach): the device was unplugged with the
    // detach and came back with its kernel driver, so the old binding no longer holds.
    auto before = attachmentBefore.find(a.record.eniId);
    if (before != attachmentBefore.end() && !before->second.empty() &&
        !a.record.attachmentId.empty() && before->second != a.record.attachmentId)
      bound_.erase(a.record.eniId);
    recorded.insert(a.record.eniId);
    auto b = bound_.find(a.record.eniId);
    a.record.dpdk = b == bound_.end() ? std::nullopt : std::optional<DeviceBinding>(b->second);
  }
  for (auto& h : record.held) {
    recorded.insert(h.eniId);
    auto b = bound_.find(h.eniId);
    h.dpdk = b == bound_.end() ? std::nullopt : std::optional<DeviceBinding>(b->second);
  }
  if (record.complete) {
    std::erase_if(bound_, [&](const auto& b) { return recorded.count(b.first) == 0; });
    std::erase_if(bindFailures_, [&](const auto& f) { return recorded.count(f.first) == 0; });
  }
  for (const auto& [eni, failure] : bindFailures_)
    record.problems.push_back({failure.owner, failure.message, kDpdkBindFailedReason});
}

}  // namespace eni
