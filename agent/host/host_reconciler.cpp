#include "agent/host/host_reconciler.h"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <random>

#include "agent/base/log.h"
#include "agent/eni/ownership.h"
#include "agent/eni/planner.h"

namespace eni {
namespace {

constexpr const char* kHostDesireKey = "host.json";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool hostOwned(const NetworkInterface& eni, const std::string& instanceId) {
  return ownedBy(eni, instanceId) && tagValue(eni, "NodeENI").rfind("host-", 0) == 0;
}

AttachmentRecord removingRecord(const NetworkInterface& eni) {
  AttachmentRecord r;
  r.nodeEni = tagValue(eni, "NodeENI");
  r.eniId = eni.id;
  r.state = "removing";
  return r;
}

TagSet tagsOf(const NetworkInterface& eni) {
  TagSet out;
  for (const auto& t : eni.tags) out[t.key] = t.value;
  return out;
}

}  // namespace

struct HostReconciler::PassInput {
  HostConfig config;
  NodeState state;
  std::vector<HostLink> previousLinks;  // kept when this pass cannot tell
  bool verify = false;
};

struct HostReconciler::PassOutput {
  NodeState state;
  std::vector<HostLink> links;
  std::vector<std::string> problems;
  std::set<std::string> newEnis;                           // created or attached by this pass
  std::set<std::string> removed;                           // detached and deleted by this pass
  std::map<std::string, NetworkInterface> observed;        // ENIs a Describe showed this pass
  std::optional<std::vector<NetworkInterface>> ownedList;  // this instance's owned ENIs, if read
  std::set<std::string> needCreateRecord;  // creates held back for their write-ahead
  std::size_t enis = 0;
  std::size_t interfaces = 0;
  bool retry = false;
};

HostReconciler::HostReconciler(Ec2Api& ec2, Imds& imds, Scheduler& scheduler, Executor& executor,
                               Sleeper& sleeper, StateStore& store, LinkReconciler* links,
                               HostReconcilerOptions options)
    : ec2_(ec2),
      imds_(imds),
      scheduler_(scheduler),
      executor_(executor),
      sleeper_(sleeper),
      store_(store),
      links_(links),
      options_(std::move(options)) {
  if (links_ != nullptr) links_->setOnChange([this] { onLinkChange(); });
}

HostReconciler::~HostReconciler() {
  if (links_ != nullptr) links_->setOnChange(nullptr);
  if (passScheduled_) scheduler_.cancel(timer_);
  if (resyncScheduled_) scheduler_.cancel(resyncTimer_);
}

void HostReconciler::start(HostConfig config, std::optional<NodeState> saved) {
  config_ = std::move(config);
  if (saved) {
    state_ = std::move(*saved);
    if (auto text = encodeNodeState(state_); text) savedText_ = *text;
  }
  started_ = true;
  markDirty();
}

void HostReconciler::setConfig(HostConfig config) {
  if (config == config_) return;
  config_ = std::move(config);
  markDirty();
}

void HostReconciler::markDirty() {
  dirty_ = true;
  if (!started_ || passRunning_ || passScheduled_) return;
  schedule(options_.debounce);
}

void HostReconciler::schedule(Duration delay) {
  passScheduled_ = true;
  timer_ = scheduler_.runAfter(delay, [this] {
    passScheduled_ = false;
    runPass();
  });
}

void HostReconciler::runPass() {
  passRunning_ = true;
  dirty_ = false;
  ++passes_;
  auto in = std::make_shared<PassInput>();
  in->config = config_;
  in->state = state_;
  in->verify = verifyNext_;
  in->previousLinks = hostLinks_;
  verifyNext_ = false;
  auto out = std::make_shared<PassOutput>();
  executor_.run([this, in, out] { work(*in, *out); }, [this, out] { finish(*out); });
}

void HostReconciler::work(PassInput& in, PassOutput& out) {
  out.state = in.state;
  // A pass that stops early (IMDS or EC2 unreachable) changes nothing on the links: what was
  // brought up and addressed stays as it is.
  out.links = in.previousLinks;
  auto identity = imds_.identity();
  if (!identity) {
    out.problems.push_back("cannot read the instance identity from IMDS: " +
                           identity.error().describe() + "; will retry");
    out.retry = true;
    return;
  }
  const std::string& me = identity->instanceId;
  if (!out.state.instanceId.empty() && out.state.instanceId != me) {
    logWarn("the state file belongs to another instance, starting cold",
            {{"state_instance", out.state.instanceId}, {"instance", me}});
    out.state = NodeState{};
  }
  out.state.instanceId = me;
  auto attached = imds_.interfaces();
  if (!attached) {
    out.problems.push_back("cannot read this instance's interfaces from IMDS: " +
                           attached.error().describe() + "; will retry");
    out.retry = true;
    return;
  }
  // ENIs the state does not know yet (a cold start, or attached by someone else meanwhile), or
  // every one on a drift check: one filtered Describe.
  bool describe = in.verify;
  for (const auto& i : attached->interfaces) {
    if (out.state.enis.count(i.interfaceId) == 0) describe = true;
  }
  if (describe) {
    auto enis = ec2_.describeNetworkInterfaces({}, {{"attachment.instance-id", {me}}});
    if (!enis) {
      out.problems.push_back("cannot describe this instance's ENIs: " + enis.error().describe() +
                             "; will retry");
      out.retry = true;
      return;
    }
    for (auto& e : *enis) out.observed[e.id] = std::move(e);
  }
  out.links.clear();
  interfaces(in, out, *attached);
  tags(in, out, *attached);
}

void HostReconciler::interfaces(PassInput& in, PassOutput& out, const InterfaceMap& attached) {
  const std::string me = out.state.instanceId;
  std::set<std::int64_t> used;
  std::string vpcId;
  for (const auto& i : attached.interfaces) {
    used.insert(i.deviceNumber);
    if (i.deviceNumber == 0 || vpcId.empty()) vpcId = i.vpcId;
  }
  auto owned = [&] { return ownedList(out); };

  std::vector<AttachmentRecord> records;
  std::vector<AttachmentRecord> unattached;  // created or found, and the attach failed
  std::set<std::string> keep;                // ENI IDs that stay
  std::set<std::string> keysWithProblems;
  for (const HostInterface& want : in.config.interfaces) {
    const std::string key = want.key();
    const std::string where = "interface " + key;
    std::string subnetId = want.subnetId;
    if (subnetId.empty()) {
      auto cached = subnetNameCache_.find(want.subnetName);
      if (cached == subnetNameCache_.end()) {
        auto subnets =
            ec2_.describeSubnets({}, {{"tag:Name", {want.subnetName}}, {"vpc-id", {vpcId}}});
        if (!subnets) {
          out.problems.push_back(where + ": cannot look up subnet " + want.subnetName + ": " +
                                 subnets.error().describe() + "; will retry");
          out.retry = true;
          keysWithProblems.insert(key);
          continue;
        }
        if (subnets->size() != 1) {
          out.problems.push_back(where + ": " + std::to_string(subnets->size()) +
                                 " subnets are tagged Name=" + want.subnetName + " in " + vpcId +
                                 "; fix subnetName or use subnetID");
          keysWithProblems.insert(key);
          continue;
        }
        cached = subnetNameCache_.emplace(want.subnetName, (*subnets)[0].id).first;
      }
      subnetId = cached->second;
    }

    const AttachmentRecord* record = nullptr;
    for (const auto& r : out.state.attachments) {
      if (r.nodeEni == key) record = &r;
    }
    const ImdsInterface* live = nullptr;
    if (record != nullptr) {
      for (const auto& i : attached.interfaces) {
        if (i.interfaceId == record->eniId) live = &i;
      }
    }
    AttachmentRecord next;
    next.nodeEni = key;
    next.mtu = want.mtu;
    next.state = "attached";
    std::string mac;
    if (live != nullptr && live->subnetId == subnetId) {
      // Recorded and still attached in its subnet: no EC2 call.
      next.eniId = record->eniId;
      next.attachmentId = record->attachmentId;
      next.deviceIndex = live->deviceNumber;
      next.interfaceName = record->interfaceName;
      mac = live->mac;
      // Assume a recorded attachment has the configured DeleteOnTermination unless this process
      // sent another value (a SIGHUP changed it).
      auto sent = deleteOnTerminationSet_.find(key);
      if (sent == deleteOnTerminationSet_.end()) {
        deleteOnTerminationSet_[key] = want.deleteOnTermination;
      } else if (sent->second != want.deleteOnTermination) {
        if (options_.dryRun) {
          logInfo("dry run: would set DeleteOnTermination", {{"eni", next.eniId}});
        } else if (auto r = ec2_.setDeleteOnTermination(next.eniId, next.attachmentId,
                                                        want.deleteOnTermination);
                   !r) {
          out.problems.push_back(where + ": cannot set DeleteOnTermination on " + next.eniId +
                                 ": " + r.error().describe() + "; will retry");
          out.retry = true;
        } else {
          sent->second = want.deleteOnTermination;
        }
      }
    } else {
      const auto* list = owned();
      if (list == nullptr) {
        keysWithProblems.insert(key);
        continue;
      }
      NetworkInterface eni;
      bool found = false;
      for (const auto& e : *list) {
        if (tagValue(e, "NodeENI") == key && tagValue(e, "SubnetID") == subnetId &&
            hostOwned(e, me) && keep.count(e.id) == 0 && neverManagedWarned(e).empty() &&
            (!e.attachment || e.attachment->instanceId.empty() || e.attachment->instanceId == me ||
             e.attachment->status == "detached")) {
          eni = e;
          found = true;
          break;
        }
      }
      if (!found) {
        if (options_.dryRun) {
          logInfo("dry run: would create and attach an ENI",
                  {{"interface", key}, {"subnet", subnetId}});
          continue;
        }
        if (std::find(out.state.creating.begin(), out.state.creating.end(), key) ==
            out.state.creating.end()) {
          // Write-ahead first: state.json must say a create may be in flight before it is, so a
          // kill right after the create leaves an ENI the next run may still release.
          out.needCreateRecord.insert(key);
          keysWithProblems.insert(key);
          continue;
        }
        CreateEniRequest request;
        request.subnetId = subnetId;
        request.securityGroupIds = want.securityGroupIds;
        request.description =
            want.description.empty() ? "eni-agent: host " + me + " " + key : want.description;
        request.clientToken = clientTokenFor(key, me, subnetId, want.deviceIndex);
        request.tags = ownershipTags(key, me, subnetId, me);
        auto created = ec2_.createNetworkInterface(request);
        if (!created) {
          out.problems.push_back(where + ": cannot create an ENI in " + subnetId + ": " +
                                 created.error().describe() +
                                 (created.error().retryable() ? "; will retry" : ""));
          out.retry = out.retry || created.error().retryable();
          keysWithProblems.insert(key);
          continue;
        }
        eni = *created;
        if (eni.tags.empty()) eni.tags = request.tags;
        logInfo("created ENI", {{"eni", eni.id}, {"interface", key}, {"subnet", subnetId}});
        crashPoint("created");
      } else {
        logInfo("adopted own ENI", {{"eni", eni.id}, {"interface", key}});
      }
      next.eniId = eni.id;
      mac = eni.macAddress;
      if (eni.attachment && eni.attachment->instanceId == me &&
          eni.attachment->status != "detached" && !eni.attachment->attachmentId.empty()) {
        next.attachmentId = eni.attachment->attachmentId;
        next.deviceIndex = eni.attachment->deviceIndex;
      } else {
        if (options_.dryRun) {
          logInfo("dry run: would attach ENI", {{"eni", eni.id}});
          continue;
        }
        const std::int64_t index = freeDeviceIndex(want.deviceIndex, used);
        auto attachment = ec2_.attachNetworkInterface(eni.id, me, index);
        if (!attachment) {
          out.problems.push_back(where + ": cannot attach " + eni.id + " at device index " +
                                 std::to_string(index) + ": " + attachment.error().describe() +
                                 (attachment.error().retryable() ? "; will retry" : ""));
          out.retry = out.retry || attachment.error().retryable();
          keep.insert(eni.id);  // ours and wanted: never deleted for a failed attach
          keysWithProblems.insert(key);
          next.state = "detached";  // recorded all the same: only a recorded ENI is released
          unattached.push_back(std::move(next));
          continue;
        }
        used.insert(index);
        next.attachmentId = *attachment;
        next.deviceIndex = index;
        eni.attachment = EniAttachment{*attachment, me, index, "attached", false};
        logInfo("attached ENI", {{"eni", eni.id}, {"device_index", index}});
        crashPoint("attached");
      }
      out.newEnis.insert(eni.id);
      out.observed[eni.id] = eni;
      if (auto r = ec2_.setDeleteOnTermination(eni.id, next.attachmentId, want.deleteOnTermination);
          !r) {
        out.problems.push_back(where + ": cannot set DeleteOnTermination on " + eni.id + ": " +
                               r.error().describe() + "; will retry");
        out.retry = true;
        deleteOnTerminationSet_.erase(key);
      } else {
        deleteOnTerminationSet_[key] = want.deleteOnTermination;
      }
    }
    keep.insert(next.eniId);
    HostLink link;
    link.key = key;
    link.eniId = next.eniId;
    link.mac = lower(mac);
    link.mtu = want.mtu;
    link.deviceIndex = next.deviceIndex;
    link.configureAddress = want.configureAddress;
    link.policyRouting = want.policyRouting;
    if (const ImdsInterface* i = attached.findByMac(link.mac); i != nullptr) {
      if (!i->localIpv4s.empty()) link.primaryIpv4 = i->localIpv4s.front();
    } else if (auto o = out.observed.find(next.eniId); o != out.observed.end()) {
      link.primaryIpv4 = o->second.privateIpAddress;
    }
    if ((want.configureAddress || want.policyRouting) && !link.mac.empty()) {
      auto cidr = subnetCidrCache_.find(subnetId);
      if (cidr == subnetCidrCache_.end()) {
        auto text = imds_.get("network/interfaces/macs/" + link.mac + "/subnet-ipv4-cidr-block");
        if (text) cidr = subnetCidrCache_.emplace(subnetId, *text).first;
      }
      if (cidr != subnetCidrCache_.end()) link.subnetCidr = cidr->second;
    }
    out.links.push_back(link);
    next.mac = link.mac;  // eni-agent status finds the link by it
    records.push_back(std::move(next));
  }
  // An interface whose config has a problem keeps whatever ENI, link and addressing it had.
  for (const auto& r : out.state.attachments) {
    if (keysWithProblems.count(r.nodeEni) != 0 && keep.insert(r.eniId).second) {
      records.push_back(r);
      for (const auto& l : in.previousLinks) {
        if (l.key == r.nodeEni && l.eniId == r.eniId) out.links.push_back(l);
      }
    }
  }
  for (auto& r : unattached) {
    auto same = [&](const AttachmentRecord& x) { return x.eniId == r.eniId; };
    if (std::none_of(records.begin(), records.end(), same)) records.push_back(std::move(r));
  }
  std::vector<AttachmentRecord> leaving;
  for (const auto& r : out.state.attachments) {
    if (keep.count(r.eniId) == 0) leaving.push_back(r);
  }
  const RecordedAttachments recorded{me, out.state.attachments, {}};
  out.state.attachments = std::move(records);
  out.interfaces = out.links.size();
  removeUnwanted(out, leaving, recorded, keep);
}

const std::vector<NetworkInterface>* HostReconciler::ownedList(PassOutput& out) {
  if (!out.ownedList) {
    auto list = ec2_.describeNetworkInterfaces(
        {}, {{std::string("tag:") + kInstanceIdTag, {out.state.instanceId}},
             {"tag:" + std::string(kManagedByTag), {"eni-agent"}}});
    if (!list) {
      out.problems.push_back("cannot list the ENIs eni-agent owns on this instance: " +
                             list.error().describe() + "; will retry");
      out.retry = true;
      return nullptr;
    }
    out.ownedList = std::move(*list);
  }
  return &*out.ownedList;
}

void HostReconciler::removeUnwanted(PassOutput& out, const std::vector<AttachmentRecord>& leaving,
                                    const RecordedAttachments& recorded,
                                    const std::set<std::string>& keep) {
  const std::string& me = out.state.instanceId;
  const std::set<std::string> creating(out.state.creating.begin(), out.state.creating.end());
  // Leftovers: recorded ENIs no interface wants, and owned ENIs found by tag that none wants.
  // The release rule decides; an ENI this pass's list shows it refuses costs no further call.
  std::set<std::string> candidates;
  for (const auto& r : leaving) candidates.insert(r.eniId);
  // A write-ahead left by a kill: the ENI it announced may exist, unrecorded, and no interface
  // of host.json may want it any more; only the list by ownership tags finds it.
  if (!creating.empty() && !options_.dryRun) ownedList(out);
  if (out.ownedList) {
    for (const auto& e : *out.ownedList) {
      if (keep.count(e.id) != 0 || !hostOwned(e, me)) continue;
      if (const auto d = releasable(e, recorded, me, creating); !d.release) {
        warnOnce(e.id, d.reason);
        candidates.erase(e.id);
        continue;
      }
      candidates.insert(e.id);
    }
  }
  for (const auto& id : candidates) {
    if (options_.dryRun) {
      logInfo("dry run: would detach and delete ENI", {{"eni", id}});
      continue;
    }
    auto now = ec2_.describeNetworkInterfaces({}, {{"network-interface-id", {id}}});
    if (!now) {
      out.problems.push_back("cannot check ENI " + id +
                             " before deleting it: " + now.error().describe() + "; will retry");
      out.retry = true;
      for (const auto& r : leaving) {
        if (r.eniId == id) out.state.attachments.push_back(r);
      }
      continue;
    }
    if (now->empty()) continue;  // already gone
    const NetworkInterface& e = now->front();
    const ReleaseDecision decision = releasable(e, recorded, me, creating);
    if (!hostOwned(e, me) || !decision.release) {
      warnOnce(id, hostOwned(e, me) ? decision.reason
                                    : "it lacks eni-agent's host-mode ownership tags for " + me);
      continue;
    }
    if (!releaseEni(out, e)) {
      out.retry = true;
      out.state.attachments.push_back(removingRecord(e));  // recorded until it is gone
      continue;
    }
    out.state.enis.erase(id);
    out.observed.erase(id);
    out.removed.insert(id);
    logInfo("deleted ENI that left host.json",
            {{"eni", id}, {"interface", tagValue(e, "NodeENI")}});
  }
}

bool HostReconciler::releaseEni(PassOutput& out, const NetworkInterface& e) {
  const std::string& id = e.id;
  if (e.attachment && !e.attachment->attachmentId.empty() && e.attachment->status != "detached") {
    if (auto r = ec2_.detachNetworkInterface(e.attachment->attachmentId, false);
        !r && r.error().code != ErrorCode::NotFound) {
      out.problems.push_back("cannot detach ENI " + id + ": " + r.error().describe() +
                             "; will retry");
      return false;
    }
    bool available = false;
    for (int i = 0; i < options_.detachPolls && !available; ++i) {
      auto polled = ec2_.describeNetworkInterfaces({}, {{"network-interface-id", {id}}});
      available = polled && (polled->empty() || polled->front().status == "available");
      if (!available) sleeper_.sleepFor(options_.detachPollInterval);
    }
    if (!available) {
      out.problems.push_back("ENI " + id + " is still attached after the detach; will retry");
      return false;
    }
  }
  if (auto r = ec2_.deleteNetworkInterface(id); !r && r.error().code != ErrorCode::NotFound) {
    out.problems.push_back("cannot delete ENI " + id + ": " + r.error().describe() +
                           "; will retry");
    return false;
  }
  return true;
}

std::string HostReconciler::neverManagedWarned(const NetworkInterface& e) {
  std::string why = whyNeverManaged(e);
  if (!why.empty()) warnOnce(e.id, why);
  return why;
}

void HostReconciler::warnOnce(const std::string& eniId, const std::string& reason) {
  if (!refusedEnis_.insert(eniId).second) return;
  logWarn("not adopting, detaching or deleting an ENI that carries eni-agent's tags, ignoring it",
          {{"eni", eniId}, {"reason", reason}});
}

void HostReconciler::tags(PassInput& in, PassOutput& out, const InterfaceMap& attached) {
  // Every ENI of this instance: what IMDS lists, plus what this pass attached.
  struct Seen {
    std::string mac;
    std::int64_t deviceIndex = -1;
    std::string subnet;
    std::string ip;
  };
  std::map<std::string, Seen> enis;
  for (const auto& i : attached.interfaces) {
    if (out.removed.count(i.interfaceId) != 0) continue;
    enis[i.interfaceId] = {lower(i.mac), i.deviceNumber, i.subnetId,
                           i.localIpv4s.empty() ? "" : i.localIpv4s.front()};
  }
  for (const auto& id : out.newEnis) {
    const NetworkInterface& e = out.observed[id];
    enis[id] = {lower(e.macAddress), e.attachment ? e.attachment->deviceIndex : -1, e.subnetId,
                e.privateIpAddress};
  }
  // ENIs that left this instance leave the record.
  for (auto it = out.state.enis.begin(); it != out.state.enis.end();) {
    it = enis.count(it->first) == 0 ? out.state.enis.erase(it) : std::next(it);
  }
  out.enis = enis.size();

  auto plan = [&](const std::string& id) {
    EniInput input;
    input.eniId = id;
    auto record = out.state.enis.find(id);
    if (record != out.state.enis.end()) input.record = &record->second;
    TagSet observed;
    if (auto o = out.observed.find(id); o != out.observed.end()) {
      observed = tagsOf(o->second);
      input.observed = &observed;
    }
    PodDesire desire;
    desire.key = kHostDesireKey;
    desire.ip = enis[id].ip;
    desire.tags = in.config.tags;
    input.pods.push_back(desire);
    return planEni(input, PlanOptions{});
  };
  // An ENI found in conflict (another tool's hash or values) stays skipped while host.json's
  // tags are the same, until a Describe (drift check) shows it again: no read per pass or restart.
  const std::string desiredHash = in.config.tags.empty() ? "" : tagHash(in.config.tags);
  const std::string conflictMark = "conflict:" + desiredHash;
  std::set<std::string> skipped;
  for (const auto& [id, seen] : enis) {
    auto record = out.state.enis.find(id);
    if (record == out.state.enis.end() || out.observed.count(id) != 0) continue;
    auto mark = record->second.pods.find(kHostDesireKey);
    if (mark != record->second.pods.end() && mark->second.uid == conflictMark) {
      skipped.insert(id);
      out.problems.push_back("tags: ENI " + id +
                             " is tagged by another tool (conflict found earlier); not tagging it");
    }
  }
  std::vector<EniPlan> plans;
  std::vector<std::string> unseen;  // would set keys it does not own without having seen the ENI
  for (const auto& [id, seen] : enis) {
    if (skipped.count(id) != 0) continue;
    EniPlan p = plan(id);
    if (out.observed.count(id) == 0) {
      const auto record = out.state.enis.find(id);
      for (const auto& [k, v] : p.toSet) {
        if (k != kHashTagKey &&
            (record == out.state.enis.end() || record->second.tags.count(k) == 0)) {
          unseen.push_back(id);
          break;
        }
      }
    }
    plans.push_back(std::move(p));
  }
  if (!unseen.empty()) {
    // New keys: look at those ENIs first, so a tag someone else set is never overwritten.
    auto described = ec2_.describeNetworkInterfaces({}, {{"network-interface-id", unseen}});
    if (!described) {
      out.problems.push_back("cannot describe ENIs before tagging them: " +
                             described.error().describe() + "; will retry");
      out.retry = true;
      return;
    }
    for (auto& e : *described) out.observed[e.id] = std::move(e);
    plans.clear();
    for (const auto& [id, seen] : enis) {
      if (skipped.count(id) == 0) plans.push_back(plan(id));
    }
  }

  std::set<std::string> failed;
  std::set<std::string> conflicts;
  for (const auto& p : plans) {
    for (const auto& v : p.verdicts) {
      if (v.reason != SyncReason::Conflict) continue;
      out.problems.push_back("tags: " + v.message);
      conflicts.insert(p.eniId);
    }
  }
  if (options_.dryRun) {
    for (const auto& p : plans) {
      if (p.writes())
        logInfo("dry run: would write tags", {{"eni", p.eniId}, {"set", tagsToJson(p.toSet)}});
    }
  } else {
    for (const auto& write : coalesceWrites(plans)) {
      std::vector<Tag> list;
      for (const auto& [k, v] : write.tags) list.push_back({k, v});
      auto done = write.create ? ec2_.createTags(write.resources, list)
                               : ec2_.deleteTags(write.resources, list);
      if (!done) {
        out.problems.push_back(std::string(write.create ? "CreateTags" : "DeleteTags") + " on " +
                               std::to_string(write.resources.size()) +
                               " ENI(s) failed: " + done.error().describe() + "; will retry");
        out.retry = true;
        failed.insert(write.resources.begin(), write.resources.end());
      } else {
        logInfo(write.create ? "tagged ENIs" : "removed tags from ENIs",
                {{"enis", std::to_string(write.resources.size())},
                 {"first_eni", write.resources.front()},
                 {"tags", tagsToJson(write.tags)}});
      }
    }
  }
  for (const auto& p : plans) {
    const Seen& seen = enis[p.eniId];
    EniRecord& r = out.state.enis[p.eniId];
    r.mac = seen.mac;
    r.deviceIndex = seen.deviceIndex;
    r.subnet = seen.subnet;
    if (conflicts.count(p.eniId) != 0) {
      r.pods[kHostDesireKey] = PodRecord{conflictMark, seen.ip};
    } else {
      r.pods.erase(kHostDesireKey);
    }
    if (failed.count(p.eniId) != 0 || (options_.dryRun && p.writes())) continue;
    r.tags = p.owned;
    r.hash = p.hash;
  }
}

void HostReconciler::finish(PassOutput& out) {
  passRunning_ = false;
  // Link names and states come from the loop thread's LinkReconciler, not from the pass.
  std::map<std::string, std::pair<std::string, std::string>> linkInfo;
  for (const auto& a : state_.attachments) linkInfo[a.eniId] = {a.interfaceName, a.state};
  state_ = std::move(out.state);
  for (auto& a : state_.attachments) {
    auto it = linkInfo.find(a.eniId);
    if (it != linkInfo.end() && a.interfaceName.empty()) a.interfaceName = it->second.first;
  }
  hostLinks_ = out.links;
  if (!out.needCreateRecord.empty()) {
    std::set<std::string> creating(state_.creating.begin(), state_.creating.end());
    creating.insert(out.needCreateRecord.begin(), out.needCreateRecord.end());
    state_.creating.assign(creating.begin(), creating.end());
  } else if (!out.retry) {
    // Nothing left to create or retry: every ENI made is in the records now.
    state_.creating.clear();
  }
  if (links_ != nullptr) {
    std::set<std::string> macs;
    for (const auto& l : out.links) {
      if (l.mac.empty()) continue;
      macs.insert(l.mac);
      links_->manage(l.mac, l.mtu);
    }
    std::vector<std::string> stale;
    for (const auto& [mac, link] : links_->links()) {
      if (macs.count(mac) == 0) stale.push_back(mac);
    }
    for (const auto& mac : stale) links_->unmanage(mac);
  }
  const bool saved = onLinkChange();  // names and states into the record, save, tell the addressing

  HostPassReport report;
  report.pass = passes_;
  report.complete = !out.retry && out.needCreateRecord.empty();
  report.enis = out.enis;
  report.interfaces = out.interfaces;
  report.wanted = config_.interfaces.size();
  report.problems = out.problems;
  if (!out.retry) ++completePasses_;
  std::string problems;
  for (const auto& p : out.problems) problems += p + "\n";
  if (problems != lastProblems_) {
    for (const auto& p : out.problems) logWarn("host reconcile problem", {{"problem", p}});
    lastProblems_ = problems;
  }
  if (onPass_) onPass_(report);

  if (!out.needCreateRecord.empty() && !saved) {
    // Not on disk, so not recorded: the next pass asks again instead of creating.
    auto& creating = state_.creating;
    creating.erase(std::remove_if(creating.begin(), creating.end(),
                                  [&](const std::string& key) {
                                    return out.needCreateRecord.count(key) != 0;
                                  }),
                   creating.end());
    logWarn("cannot record the ENI write-ahead in the state file, no ENI created, will retry",
            {{"in_ms", options_.retryDelay.count()}});
  }
  if (dirty_ || (!out.needCreateRecord.empty() && saved)) {
    markDirty();  // the write-ahead is stored: the next pass creates
  } else if (out.retry || !out.needCreateRecord.empty()) {
    schedule(options_.retryDelay);
  }
  if (!resyncScheduled_ && options_.resyncInterval.count() > 0) {
    // ±20% jitter, so a fleet restarted together does not describe together.
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto base = options_.resyncInterval.count();
    std::uniform_int_distribution<long long> jitter(base * 8 / 10, base * 12 / 10);
    resyncScheduled_ = true;
    resyncTimer_ = scheduler_.runAfter(Duration(jitter(rng)), [this] {
      resyncScheduled_ = false;
      verifyNext_ = true;
      markDirty();
    });
  }
}

bool HostReconciler::onLinkChange() {
  if (links_ != nullptr) {
    std::map<std::string, std::string> macOf;
    for (const auto& l : hostLinks_) macOf[l.eniId] = l.mac;
    for (auto& a : state_.attachments) {
      auto link = links_->links().find(macOf[a.eniId]);
      if (link == links_->links().end() || a.state == "removing") continue;
      if (!link->second.name.empty()) a.interfaceName = link->second.name;
      a.state = std::string(toString(link->second.state));
    }
  }
  const bool saved = save();
  if (onLinks_) onLinks_(hostLinks_);
  return saved;
}

void HostReconciler::crashPoint(const char* where) const {
  if (options_.crashPoint != where) return;
  logWarn("crash point reached, killing myself (test hook)", {{"point", where}});
  raise(SIGKILL);
}

bool HostReconciler::save() {
  auto text = encodeNodeState(state_);
  if (!text) {
    logWarn("cannot encode the state, not saving it", {{"error", text.error().message}});
    return false;
  }
  if (*text == savedText_) return true;
  if (auto ok = store_.save(state_); !ok) {
    logWarn("cannot save the state file, will retry with the next change",
            {{"error", ok.error().describe()}});
    return false;
  }
  savedText_ = *text;
  return true;
}

}  // namespace eni
