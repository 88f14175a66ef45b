#include "agent/host/host_pass.h"

#include <algorithm>
#include <cctype>

#include "agent/base/strings.h"

namespace eni {
namespace {

HostLink linkFor(const HostInterface& want, const AttachmentRecord& record, const std::string& mac,
                 const HostObservation& observed, const HostInterfaces& out) {
  HostLink link;
  link.key = record.nodeEni;
  link.eniId = record.eniId;
  link.mac = mac;
  link.mtu = want.mtu;
  link.deviceIndex = record.deviceIndex;
  link.configureAddress = want.configureAddress;
  link.policyRouting = want.policyRouting;
  if (const ImdsInterface* i = observed.attached.findByMac(mac); i != nullptr) {
    if (!i->localIpv4s.empty()) link.primaryIpv4 = i->localIpv4s.front();
  } else if (auto n = out.attachedNow.find(record.eniId); n != out.attachedNow.end()) {
    link.primaryIpv4 = n->second.privateIpAddress;
  } else if (auto d = observed.described.find(record.eniId); d != observed.described.end()) {
    link.primaryIpv4 = d->second.privateIpAddress;
  }
  return link;
}

const AttachmentRecord* recordOf(const std::vector<AttachmentRecord>& records,
                                 const std::string& eniId) {
  for (const auto& r : records) {
    if (r.eniId == eniId) return &r;
  }
  return nullptr;
}

// One ensure step's outcome into records, links and problems; false when it did not attach.
bool recordStep(const HostPassInput& in, const HostObservation& observed, const EnsureStep& step,
                const EnsureResult* r, HostInterfaces& out) {
  const std::string key = step.desired.nodeEni;
  const std::string where = "interface " + key + ": ";
  if (r == nullptr && (step.create || step.attachAt || step.adopt)) return false;  // dry run
  if (r != nullptr && r->failure) {
    out.problems.push_back(where + ensureFailureText(*r, step));
    out.retry = out.retry || r->failure->error.retryable();
    if (r->failure->step == EniActionKind::Attach) {
      AttachmentRecord unattached;  // recorded all the same: only a recorded ENI is released
      unattached.nodeEni = key;
      unattached.eniId = r->eni.id;
      unattached.mtu = step.desired.mtu;
      unattached.phase = AttachmentPhase::Detached;
      out.records.push_back(std::move(unattached));
    }
    return false;
  }
  const NetworkInterface& eni = r != nullptr ? r->eni : step.eni;
  if (r != nullptr && r->deleteOnTermination) {
    out.problems.push_back(where + "cannot set DeleteOnTermination on " + eni.id + ": " +
                           r->deleteOnTermination->describe() + "; will retry");
    out.retry = true;
  }
  auto live = observed.lifecycle.live.find(key);
  if (r != nullptr && (live == observed.lifecycle.live.end() || live->second.id != eni.id))
    out.attachedNow[eni.id] = eni;
  AttachmentRecord next;
  next.nodeEni = key;
  next.eniId = eni.id;
  next.attachmentId = eni.attachment ? eni.attachment->attachmentId : "";
  next.deviceIndex = eni.attachment ? eni.attachment->deviceIndex : -1;
  next.mtu = step.desired.mtu;
  next.phase = AttachmentPhase::Attached;
  if (const AttachmentRecord* old = recordOf(in.state.attachments, eni.id); old != nullptr)
    next.interfaceName = old->interfaceName;
  next.mac = lower(eni.macAddress);  // eni-agent status finds the link by it
  for (const auto& want : in.config.interfaces) {
    if (want.key() == key) out.links.push_back(linkFor(want, next, next.mac, observed, out));
  }
  out.records.push_back(std::move(next));
  return true;
}

}  // namespace

DesiredEni hostDesired(const HostInterface& want, const std::string& subnetId,
                       const std::string& me) {
  DesiredEni d;
  d.nodeEni = want.key();
  d.subnetId = subnetId;
  d.securityGroupIds = want.securityGroupIds;
  d.deviceIndex = want.deviceIndex;
  d.deleteOnTermination = want.deleteOnTermination;
  d.mtu = want.mtu;
  d.description =
      want.description.empty() ? "eni-agent: host " + me + " " + d.nodeEni : want.description;
  d.clientToken = clientTokenFor(d.nodeEni, me, subnetId, want.deviceIndex);
  d.tags = ownershipTags(d.nodeEni, me, subnetId, me);
  return d;
}

HostInterfaces recordHostInterfaces(const HostPassInput& in, const HostObservation& observed,
                                    const EniActions& actions,
                                    const std::vector<EnsureResult>& ensured) {
  HostInterfaces out;
  out.failedKeys = observed.lifecycle.problemOwners;
  for (std::size_t i = 0; i < actions.ensure.size(); ++i) {
    const EnsureResult* r = i < ensured.size() ? &ensured[i] : nullptr;
    if (!recordStep(in, observed, actions.ensure[i], r, out) && r != nullptr)
      out.failedKeys.insert(actions.ensure[i].desired.nodeEni);
  }
  for (const auto& owner : actions.awaitWriteAhead) out.failedKeys.insert(owner);
  if (!actions.problems.empty()) {
    out.problems.push_back(actions.problems.front().message + "; will retry");
    out.retry = true;
  }
  for (const auto& p : actions.problems) out.failedKeys.insert(p.owner);
  // An interface with a problem keeps whatever ENI, link and addressing it had.
  const std::vector<AttachmentRecord> none;
  for (const auto& r : observed.reset ? none : in.state.attachments) {
    if (out.failedKeys.count(r.nodeEni) == 0 || recordOf(out.records, r.eniId) != nullptr) continue;
    out.records.push_back(r);
    for (const auto& l : in.previousLinks) {
      if (l.key == r.nodeEni && l.eniId == r.eniId) out.links.push_back(l);
    }
  }
  return out;
}

void recordHostReleases(const std::vector<ReleaseResult>& released, NodeState& state,
                        std::vector<std::string>& problems, bool& retry) {
  for (const auto& r : released) {
    if (r.outcome == ReleaseOutcome::Released || r.outcome == ReleaseOutcome::Gone) {
      state.enis.erase(r.eniId);
    } else if (r.outcome == ReleaseOutcome::Failed) {
      problems.push_back(r.message + "; will retry");
      retry = true;
      AttachmentRecord releasing;  // recorded until it is gone
      releasing.nodeEni = r.owner;
      releasing.eniId = r.eniId;
      releasing.phase = AttachmentPhase::Releasing;
      state.attachments.push_back(std::move(releasing));
    }
  }
}

}  // namespace eni
