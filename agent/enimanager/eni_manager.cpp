#include "agent/enimanager/eni_manager.h"

#include <signal.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <optional>

#include "agent/base/json.h"
#include "agent/base/log.h"

namespace eni {
namespace {

struct Attached {
  AttachmentRecord record;
  std::string mac;
  std::string subnetId;
  std::int64_t mtu = 0;
};

}  // namespace

struct EniManager::PassInput {
  std::map<std::string, std::string> labels;
  std::vector<NodeEni> nodeEnis;
  std::string instanceId;
  bool nothingHere = false;  // no NodeENI selects this node and it owns no ENI: no EC2 call
  std::map<std::string, std::string> specHashes;  // NodeENI -> specHashFor(its spec)
  RecordedAttachments recorded;
  bool mayConfirm = false;  // the records may stand in for EC2 if IMDS agrees with them
  bool writeAhead = false;  // creates need their NodeENI in createRecorded
  std::set<std::string> createRecorded;  // NodeState::creating, as stored
};

struct EniManager::PassOutput {
  std::string instanceId;
  std::vector<Attached> attached;
  std::vector<NodeEniProblem> problems;
  bool retry = false;
  bool complete = false;   // the pass got to the end: its attachments are the new records
  bool confirmed = false;  // ... confirmed from the records and IMDS, without EC2
  std::set<std::string> foreignEnis;       // attached to this instance and not owned (EC2 passes)
  std::set<std::string> needCreateRecord;  // creates held back for their write-ahead
  // Unwanted ENIs that stay recorded: kept for a NodeENI with a problem, or not yet released.
  std::vector<AttachmentRecord> held;
};

EniManager::EniManager(KubeApi& kube, Ec2Api& ec2, Imds& imds, Scheduler& scheduler,
                       Executor& executor, Sleeper& sleeper, LinkReconciler* links,
                       EniManagerOptions options)
    : kube_(kube),
      ec2_(ec2),
      imds_(imds),
      scheduler_(scheduler),
      executor_(executor),
      sleeper_(sleeper),
      links_(links),
      options_(std::move(options)) {
  if (links_ != nullptr) links_->setOnChange([this] { publishAttachments(); });
}

EniManager::~EniManager() {
  if (links_ != nullptr) links_->setOnChange(nullptr);
  if (passScheduled_) scheduler_.cancel(timer_);
}

void EniManager::onNode(ChangeType type, const Json::Value& object) {
  if (type == ChangeType::Deleted) return;
  auto node = decodeNode(object);
  if (!node) return;
  if (!stateLoaded_) {
    // Later events carry this agent's own writes of the annotation: only the first is a record
    // of the previous run. A corrupt annotation (the tagger logs it) leaves no record, so the
    // first pass reads EC2.
    stateLoaded_ = true;
    auto it = node->meta.annotations.find(kNodeStateAnnotation);
    if (it != node->meta.annotations.end()) {
      if (auto state = decodeNodeState(it->second); state) {
        recorded_.instanceId = state->instanceId;
        recorded_.attachments = state->attachments;
        recorded_.otherEnis.insert(state->unownedEnis.begin(), state->unownedEnis.end());
        // The previous run may have been killed with a create in flight: read EC2 first, which
        // finds such an ENI by its ownership tags. The record stays until a pass ends clean.
        creating_.insert(state->creating.begin(), state->creating.end());
        createRecorded_ = creating_;
        if (!creating_.empty()) readEc2Next_ = true;
      }
    }
  }
  if (node->meta.labels == nodeLabels_) return;
  nodeLabels_ = node->meta.labels;
  markDirty();
}

void EniManager::onNodeEni(ChangeType type, const Json::Value& object) {
  const Json::Value& meta = objectField(object, "metadata");
  const std::string name = stringField(meta, "name");
  if (type == ChangeType::Deleted) {
    nodeEnis_.erase(name);
    markDirty();
    return;
  }
  // Every agent writes its own status entries, so each write reaches every agent: a pass per
  // status change would cost N^2 passes (and EC2 reads) in a fleet. Only a change of spec or
  // finalizers, or anything during deletion (the last agent removes the finalizer), needs one.
  auto old = nodeEnis_.find(name);
  const bool statusOnly = old != nodeEnis_.end() && !meta.isMember("deletionTimestamp") &&
                          objectField(old->second, "spec") == objectField(object, "spec") &&
                          objectField(old->second, "metadata").get("finalizers", Json::Value()) ==
                              meta.get("finalizers", Json::Value());
  nodeEnis_[name] = object;
  if (!statusOnly) markDirty();
}

void EniManager::start() {
  started_ = true;
  markDirty();
}

void EniManager::markDirty() {
  dirty_ = true;
  if (!started_ || passRunning_ || passScheduled_) return;
  schedulePass(options_.debounce);
}

void EniManager::schedulePass(Duration delay) {
  passScheduled_ = true;
  timer_ = scheduler_.runAfter(delay, [this] {
    passScheduled_ = false;
    runPass();
  });
}

void EniManager::runPass() {
  passRunning_ = true;
  dirty_ = false;
  ++passes_;
  auto in = std::make_shared<PassInput>();
  in->labels = nodeLabels_;
  in->instanceId = instanceId_;
  for (const auto& [name, object] : nodeEnis_) {
    if (auto n = decodeNodeEni(object); n) in->nodeEnis.push_back(std::move(*n));
    in->specHashes[name] = specHashFor(objectField(object, "spec"));
  }
  in->recorded = recorded_;
  in->mayConfirm = !readEc2Next_ && creating_.empty() && !options_.dryRun;
  in->writeAhead = static_cast<bool>(options_.recordCreating);
  in->createRecorded = createRecorded_;
  // A node no NodeENI selects, with nothing attached by this agent and no status entry of its
  // own, has nothing to create or clean up: its pass needs no EC2 read (restarts and the many
  // nodes without NodeENIs stay free). Status and finalizers are still kept below.
  in->nothingHere =
      attachments_.empty() && recorded_.attachments.empty() &&
      std::none_of(in->nodeEnis.begin(), in->nodeEnis.end(), [&](const NodeEni& n) {
        const bool selects = !n.meta.deleting && selectorMatches(n.spec.nodeSelector, in->labels);
        const bool mine =
            std::any_of(n.attachments.begin(), n.attachments.end(),
                        [&](const NodeEniAttachment& a) { return a.nodeId == options_.nodeName; });
        return selects || mine;
      });
  auto out = std::make_shared<PassOutput>();
  executor_.run([this, in, out] { work(*in, *out); }, [this, out] { finish(*out); });
}

void EniManager::work(PassInput& in, PassOutput& out) {
  out.instanceId = in.instanceId;
  if (out.instanceId.empty()) {
    auto id = imds_.identity();
    if (!id) {
      logWarn("cannot read the instance identity, will retry", {{"error", id.error().describe()}});
      out.retry = true;
      return;
    }
    out.instanceId = id->instanceId;
  }
  if (in.nothingHere) return;
  std::optional<InterfaceMap> imdsView;  // what IMDS showed, when the records were checked
  if (in.mayConfirm && confirmRecords(in, out, imdsView)) return;
  if (!imdsView) {
    // This pass did not check the records (a retry, a write-ahead, a start after a kill), but
    // IMDS's list is what the next check compares against, so the unowned ENIs come from it too.
    // Read now, before this pass attaches anything: the walk costs a dozen local requests per
    // attached interface, and the links wait for the pass to end. Free: IMDS, not EC2.
    if (auto interfaces = imds_.interfaces(); interfaces) imdsView = std::move(*interfaces);
  }
  const std::string& me = out.instanceId;
  if (in.recorded.instanceId != me && !in.recorded.attachments.empty()) {
    logWarn("the node state's NodeENI records are not this instance's, ignoring them",
            {{"records_instance", in.recorded.instanceId}, {"instance", me}});
  }
  auto instance = ec2_.describeInstance(me);
  if (!instance) {
    logWarn("cannot describe this instance, will retry", {{"error", instance.error().describe()}});
    out.retry = true;
    return;
  }

  // Names -> IDs, only for what matching NodeENIs name.
  std::vector<std::string> subnetNames, groupNames;
  for (const auto& n : in.nodeEnis) {
    if (n.meta.deleting || !selectorMatches(n.spec.nodeSelector, in.labels)) continue;
    if (!n.spec.subnetName.empty()) subnetNames.push_back(n.spec.subnetName);
    for (const auto& s : n.spec.subnetNames) subnetNames.push_back(s);
    for (const auto& g : n.spec.securityGroupNames) groupNames.push_back(g);
  }
  // Names are resolved once and cached (worker thread only); only unknown names cost a call.
  std::vector<std::string> unknownSubnets, unknownGroups;
  for (const auto& n : subnetNames) {
    if (subnetNameCache_.count(n) == 0) unknownSubnets.push_back(n);
  }
  for (const auto& n : groupNames) {
    if (groupNameCache_.count(n) == 0) unknownGroups.push_back(n);
  }
  if (!unknownSubnets.empty()) {
    auto subnets =
        ec2_.describeSubnets({}, {{"tag:Name", unknownSubnets}, {"vpc-id", {instance->vpcId}}});
    if (subnets) {
      for (const auto& s : *subnets) {
        for (const auto& t : s.tags) {
          if (t.key == "Name") subnetNameCache_[t.value] = s.id;
        }
      }
    }
  }
  if (!unknownGroups.empty()) {
    auto groups = ec2_.describeSecurityGroups(
        {}, {{"group-name", unknownGroups}, {"vpc-id", {instance->vpcId}}});
    if (groups) {
      for (const auto& g : *groups) groupNameCache_[g.name] = g.id;
    }
  }
  const DesiredEnis desired =
      desiredEnis(options_.nodeName, in.labels, me, in.nodeEnis, subnetNameCache_, groupNameCache_);
  out.problems = desired.problems;

  // Security groups given by ID must be in this instance's VPC; EC2 would refuse the create with
  // a less helpful message. Each group's VPC is read once.
  std::vector<std::string> unseenGroups;
  for (const auto& d : desired.enis) {
    for (const auto& g : d.securityGroupIds) {
      if (groupVpcCache_.count(g) == 0 &&
          std::find(unseenGroups.begin(), unseenGroups.end(), g) == unseenGroups.end()) {
        unseenGroups.push_back(g);
      }
    }
  }
  if (!unseenGroups.empty()) {
    auto groups = ec2_.describeSecurityGroups({}, {{"group-id", unseenGroups}});
    if (groups) {
      for (const auto& g : *groups) groupVpcCache_[g.id] = g.vpcId;
    }
  }
  std::set<std::string> badNodeEnis;
  for (const auto& d : desired.enis) {
    for (const auto& g : d.securityGroupIds) {
      auto vpc = groupVpcCache_.find(g);
      if (vpc != groupVpcCache_.end() && vpc->second != instance->vpcId &&
          badNodeEnis.insert(d.nodeEni).second) {
        out.problems.push_back({d.nodeEni, "security group " + g + " is in " + vpc->second +
                                               ", not in this instance's " + instance->vpcId +
                                               "; use a group of the node's VPC"});
      }
    }
  }

  auto mine = ec2_.describeNetworkInterfaces({}, {{"tag:Node", {options_.nodeName}}});
  if (!mine) {
    logWarn("cannot list this node's ENIs, will retry", {{"error", mine.error().describe()}});
    out.retry = true;
    return;
  }
  std::set<std::int64_t> used;
  for (const auto& n : instance->networkInterfaces) {
    if (n.attachment) used.insert(n.attachment->deviceIndex);
  }
  std::set<std::string> wanted;  // ENI IDs in use for a desired (NodeENI, subnet)
  // NodeENIs this pass did not fully satisfy: their records carry no spec hash, so the next
  // pass (or start) cannot trust them without EC2.
  std::set<std::string> unsettled(badNodeEnis);
  for (const auto& p : out.problems) unsettled.insert(p.nodeEni);

  if (options_.dryRun) {
    for (const auto& d : desired.enis) {
      logInfo("dry run: would ensure an ENI",
              {{"nodeeni", d.nodeEni}, {"subnet", d.subnetId}, {"device_index", d.deviceIndex}});
    }
    for (const auto& e : *mine) {
      if (!ownedBy(e, me)) continue;
      const ReleaseDecision d = releasable(e, in.recorded, me, in.createRecorded);
      logInfo(d.release ? "dry run: would keep or clean up ENI" : "dry run: would leave ENI alone",
              {{"eni", e.id}, {"reason", d.reason}});
    }
    return;
  }

  for (const auto& d : desired.enis) {
    if (badNodeEnis.count(d.nodeEni) != 0) continue;
    NetworkInterface eni;
    bool found = false;
    for (const auto& e : *mine) {
      if (tagValue(e, "NodeENI") == d.nodeEni && tagValue(e, "SubnetID") == d.subnetId &&
          (ownedBy(e, me) || adoptable(e, options_.nodeName)) && wanted.count(e.id) == 0 &&
          usable(e, me)) {
        eni = e;
        found = true;
        break;
      }
    }
    if (found && adoptable(eni, options_.nodeName)) {
      // aws-multi-eni-controller made it: adopt it by adding eni-agent's ownership tags.
      if (auto r = ec2_.createTags(
              {eni.id},
              {{kManagedByTag, "eni-agent"}, {kInstanceIdTag, me}, {kNoManageTag, "true"}});
          !r) {
        out.problems.push_back(
            {d.nodeEni, "cannot adopt " + eni.id + ": " + r.error().describe() + "; will retry"});
        out.retry = true;
        unsettled.insert(d.nodeEni);
        continue;
      }
      logInfo("adopted an ENI made by aws-multi-eni-controller",
              {{"eni", eni.id}, {"nodeeni", d.nodeEni}});
    }
    if (!found && in.writeAhead && in.createRecorded.count(d.nodeEni) == 0) {
      // Write-ahead first: the node state must say a create may be in flight before it is.
      out.needCreateRecord.insert(d.nodeEni);
      unsettled.insert(d.nodeEni);
      continue;
    }
    if (!found) {
      CreateEniRequest request;
      request.subnetId = d.subnetId;
      request.securityGroupIds = d.securityGroupIds;
      request.description = d.description;
      request.clientToken = d.clientToken;
      request.tags = d.tags;
      auto created = ec2_.createNetworkInterface(request);
      if (!created) {
        out.problems.push_back({d.nodeEni, "cannot create an ENI in " + d.subnetId + ": " +
                                               created.error().describe()});
        out.retry = created.error().retryable();
        unsettled.insert(d.nodeEni);
        continue;
      }
      eni = *created;
      logInfo("created ENI", {{"eni", eni.id}, {"nodeeni", d.nodeEni}, {"subnet", d.subnetId}});
      crashPoint("created");
    }
    wanted.insert(eni.id);
    Attached a;
    a.mac = eni.macAddress;
    a.subnetId = d.subnetId;
    a.mtu = d.mtu;
    a.record.nodeEni = d.nodeEni;
    a.record.eniId = eni.id;
    a.record.mtu = d.mtu;
    a.record.mac = eni.macAddress;
    if (eni.attachment && eni.attachment->instanceId == me) {
      a.record.attachmentId = eni.attachment->attachmentId;
      a.record.deviceIndex = eni.attachment->deviceIndex;
    } else {
      const std::int64_t index = freeDeviceIndex(d.deviceIndex, used);
      auto attachment = ec2_.attachNetworkInterface(eni.id, me, index);
      if (!attachment) {
        out.problems.push_back({d.nodeEni, "cannot attach " + eni.id + " at device index " +
                                               std::to_string(index) + ": " +
                                               attachment.error().describe() + "; will retry"});
        out.retry = true;
        unsettled.insert(d.nodeEni);
        continue;
      }
      used.insert(index);
      a.record.attachmentId = *attachment;
      a.record.deviceIndex = index;
      logInfo("attached ENI", {{"eni", eni.id}, {"device_index", index}});
      crashPoint("attached");
    }
    // After a new attach, and whenever EC2 shows another value (a crash may have come between
    // attach and this call).
    const bool shown = eni.attachment && eni.attachment->instanceId == me &&
                       eni.attachment->deleteOnTermination == d.deleteOnTermination;
    auto set = deleteOnTerminationSet_.find(a.record.attachmentId);
    const bool setByUs =
        set != deleteOnTerminationSet_.end() && set->second == d.deleteOnTermination;
    if (!shown && !setByUs) {
      if (auto r =
              ec2_.setDeleteOnTermination(eni.id, a.record.attachmentId, d.deleteOnTermination);
          !r) {
        logWarn("cannot set DeleteOnTermination, will retry",
                {{"eni", eni.id}, {"error", r.error().describe()}});
        out.retry = true;
        unsettled.insert(d.nodeEni);
      } else {
        deleteOnTerminationSet_[a.record.attachmentId] = d.deleteOnTermination;
      }
    }
    a.record.state = "attached";
    out.attached.push_back(std::move(a));
  }
  for (auto& a : out.attached) {
    if (unsettled.count(a.record.nodeEni) == 0) a.record.specHash = in.specHashes[a.record.nodeEni];
  }
  // Unwanted ENIs: the release rule decides, once, which are this agent's to clean up.
  std::map<std::string, ReleaseDecision> decisions;
  for (const auto& e : *mine) {
    if (wanted.count(e.id) == 0)
      decisions[e.id] = releasable(e, in.recorded, me, in.createRecorded);
  }
  // Attached ENIs that are not eni-agent's for this instance (the primary, VPC CNI's, pod ENIs,
  // and any that merely carry its tags): later passes need not read EC2 on their account.
  std::set<std::string> owned(wanted);
  for (const auto& [id, decision] : decisions) {
    if (decision.release) owned.insert(id);
  }
  // Every ENI eni-agent owns for this instance carries the Node tag, so `mine` lists them all:
  // any other attached ENI is not its own, wherever it was seen attached. IMDS counts too, since
  // the next check compares against it (and moto's DescribeInstances keeps one ENI per device
  // index where its attachments collide).
  for (const auto& n : instance->networkInterfaces) {
    if (n.attachment && owned.count(n.id) == 0) out.foreignEnis.insert(n.id);
  }
  if (imdsView) {
    for (const auto& i : imdsView->interfaces) {
      if (!i.interfaceId.empty() && owned.count(i.interfaceId) == 0)
        out.foreignEnis.insert(i.interfaceId);
    }
  }
  releaseUnwanted(*mine, decisions, out);
  out.complete = true;
}

void EniManager::releaseUnwanted(const std::vector<NetworkInterface>& mine,
                                 const std::map<std::string, ReleaseDecision>& decisions,
                                 PassOutput& out) {
  for (const auto& e : mine) {
    auto decision = decisions.find(e.id);
    // Not eni-agent's by its tags either: someone else's ENI that merely names this node.
    if (decision == decisions.end() || !ownedBy(e, out.instanceId)) continue;
    if (!decision->second.release) {
      warnOnce(e.id, "not detaching or deleting an ENI that carries eni-agent's tags, ignoring it",
               decision->second.reason);
      continue;
    }
    // A NodeENI that still wants it but has a problem keeps its ENI.
    const std::string owner = tagValue(e, "NodeENI");
    const bool problem = std::any_of(out.problems.begin(), out.problems.end(),
                                     [&](const NodeEniProblem& p) { return p.nodeEni == owner; });
    // Either way it stays recorded until it is gone: only a recorded ENI is ever released.
    AttachmentRecord held;
    held.nodeEni = owner;
    held.eniId = e.id;
    held.mac = e.macAddress;
    if (e.attachment) {
      held.attachmentId = e.attachment->attachmentId;
      held.deviceIndex = e.attachment->deviceIndex;
    }
    if (problem) {
      held.state = "kept";
      out.held.push_back(std::move(held));
      continue;
    }
    if (!releaseEni(e)) {
      out.retry = true;
      held.state = "releasing";
      out.held.push_back(std::move(held));
      continue;
    }
    logInfo("deleted ENI", {{"eni", e.id}, {"nodeeni", owner}});
  }
}

bool EniManager::releaseEni(const NetworkInterface& e) {
  if (e.attachment && !e.attachment->attachmentId.empty() && e.attachment->status != "detached") {
    if (auto r = ec2_.detachNetworkInterface(e.attachment->attachmentId, false);
        !r && r.error().code != ErrorCode::NotFound) {
      logWarn("cannot detach ENI, will retry", {{"eni", e.id}, {"error", r.error().describe()}});
      return false;
    }
    bool available = false;
    for (int i = 0; i < options_.detachPolls && !available; ++i) {
      auto now = ec2_.describeNetworkInterfaces({e.id}, {});
      available = now && !now->empty() && (*now)[0].status == "available";
      if (!available) sleeper_.sleepFor(options_.detachPollInterval);
    }
    if (!available) return false;
  }
  if (auto r = ec2_.deleteNetworkInterface(e.id); !r && r.error().code != ErrorCode::NotFound) {
    logWarn("cannot delete ENI, will retry", {{"eni", e.id}, {"error", r.error().describe()}});
    return false;
  }
  return true;
}

bool EniManager::usable(const NetworkInterface& e, const std::string& me) {
  if (std::string why = whyNeverManaged(e); !why.empty()) {
    warnOnce(e.id, "never adopting or attaching an ENI that is not eni-agent's, ignoring it", why);
    return false;
  }
  return !e.attachment || e.attachment->status == "detached" || e.attachment->instanceId == me;
}

void EniManager::warnOnce(const std::string& eniId, const char* message,
                          const std::string& reason) {
  if (!refusedEnis_.insert(eniId).second) return;
  logWarn(message, {{"eni", eniId}, {"reason", reason}});
}

bool EniManager::confirmRecords(const PassInput& in, PassOutput& out,
                                std::optional<InterfaceMap>& imdsView) {
  auto interfaces = imds_.interfaces();
  if (!interfaces) {
    logInfo("cannot read this instance's interfaces from IMDS, reading EC2",
            {{"error", interfaces.error().describe()}});
    return false;
  }
  imdsView = *interfaces;
  Confirmation c = confirmFromRecords(options_.nodeName, in.labels, out.instanceId, in.nodeEnis,
                                      in.specHashes, in.recorded, *interfaces);
  if (!c.disagreement.empty()) {
    logInfo("the recorded NodeENI attachments do not match IMDS, reading EC2",
            {{"reason", c.disagreement}});
    return false;
  }
  for (auto& confirmed : c.attached) {
    // The spec hash says DeleteOnTermination was set to the spec's value on this attachment.
    for (const auto& n : in.nodeEnis) {
      if (n.meta.name == confirmed.record.nodeEni) {
        deleteOnTerminationSet_[confirmed.record.attachmentId] = n.spec.deleteOnTermination;
      }
    }
    Attached a;
    a.mac = confirmed.record.mac;
    a.subnetId = confirmed.subnetId;
    a.mtu = confirmed.record.mtu;
    a.record = std::move(confirmed.record);
    out.attached.push_back(std::move(a));
  }
  logInfo("confirmed the NodeENI attachments from the records and IMDS, no EC2 read",
          {{"attachments", out.attached.size()}});
  out.complete = true;
  out.confirmed = true;
  return true;
}

void EniManager::finish(PassOutput& out) {
  passRunning_ = false;
  if (!out.instanceId.empty()) instanceId_ = out.instanceId;
  readEc2Next_ = out.retry || !out.needCreateRecord.empty();
  if (out.complete && !readEc2Next_) {
    // Nothing left to create or retry: every ENI made is in the records now.
    creating_.clear();
    createRecorded_.clear();
  }
  creating_.insert(out.needCreateRecord.begin(), out.needCreateRecord.end());
  if (out.confirmed) ++confirmedPasses_;
  if (out.complete) {
    recorded_.instanceId = out.instanceId;
    recorded_.attachments.clear();
    for (const auto& a : out.attached) recorded_.attachments.push_back(a.record);
    // Kept and half-released ENIs stay recorded until they are gone. (A confirmed pass had none:
    // such a record never matches IMDS.)
    heldRecords_ = std::move(out.held);
    recorded_.attachments.insert(recorded_.attachments.end(), heldRecords_.begin(),
                                 heldRecords_.end());
    if (!out.confirmed) recorded_.otherEnis = std::move(out.foreignEnis);
  } else {
    // A pass that stopped early attached nothing and knows nothing new: the node state keeps
    // every record, or a kill now would cost the next run its right to release them. Another
    // instance's records are not carried over.
    const bool another = !instanceId_.empty() && recorded_.instanceId != instanceId_;
    heldRecords_ = another ? std::vector<AttachmentRecord>{} : recorded_.attachments;
  }
  attachments_.clear();
  macOf_.clear();
  for (const auto& a : out.attached) {
    attachments_.push_back(a.record);
    macOf_[a.record.eniId] = a.mac;
  }
  if (links_ != nullptr) {
    std::set<std::string> macs;
    for (const auto& a : out.attached) {
      if (a.mac.empty()) continue;
      macs.insert(a.mac);
      links_->manage(a.mac, static_cast<std::uint32_t>(std::max<std::int64_t>(a.mtu, 0)));
    }
    std::vector<std::string> stale;
    for (const auto& [mac, link] : links_->links()) {
      if (macs.count(mac) == 0) stale.push_back(mac);
    }
    for (const auto& mac : stale) links_->unmanage(mac);
  }
  if (!out.instanceId.empty()) publishAttachments();
  for (const auto& p : out.problems) {
    logWarn("NodeENI not satisfied on this node", {{"nodeeni", p.nodeEni}, {"reason", p.message}});
  }
  crashPoint("before-status");
  writeStatus(out);
  keepFinalizers(out);
  pruneDeadNodes();
  reportProblems(out);
  if (!out.needCreateRecord.empty() && !recordInFlight_) {
    recordInFlight_ = true;
    ++writeAheads_;
    const std::set<std::string> recording = creating_;
    options_.recordCreating({creating_.begin(), creating_.end()}, [this, recording](bool stored) {
      recordInFlight_ = false;
      if (stored) {
        createRecorded_.insert(recording.begin(), recording.end());
        markDirty();
        return;
      }
      logWarn("cannot record the ENI write-ahead in the node state, no ENI created, will retry",
              {{"node", options_.nodeName}, {"in_ms", options_.retryDelay.count()}});
      if (!passScheduled_ && !passRunning_) schedulePass(options_.retryDelay);
    });
    return;  // the write-ahead's answer starts the next pass
  }
  if (dirty_)
    markDirty();
  else if (out.retry)
    schedulePass(options_.retryDelay);
}

void EniManager::writeStatus(const PassOutput& out) {
  std::map<std::string, Json::Value> entries;  // NodeENI -> this node's entries
  for (const auto& [name, object] : nodeEnis_) entries[name] = Json::Value(Json::arrayValue);
  for (const auto& a : out.attached) {
    Json::Value e;
    e["nodeID"] = options_.nodeName;
    e["instanceID"] = instanceId_;
    e["eniID"] = a.record.eniId;
    e["attachmentID"] = a.record.attachmentId;
    e["subnetID"] = a.subnetId;
    e["deviceIndex"] = static_cast<Json::Int64>(a.record.deviceIndex);
    if (a.mtu > 0) e["mtu"] = static_cast<Json::Int64>(a.mtu);
    e["status"] = a.record.state;
    entries[a.record.nodeEni].append(e);
  }
  for (const auto& p : out.problems) {
    auto it = nodeEnis_.find(p.nodeEni);
    Json::Value e;
    e["nodeID"] = options_.nodeName;
    e["deviceIndex"] = static_cast<Json::Int64>(
        it == nodeEnis_.end() ? 1 : intField(objectField(it->second, "spec"), "deviceIndex", 1));
    e["status"] = "failed";
    e["message"] = p.message;
    entries[p.nodeEni].append(e);
  }
  for (auto& [name, list] : entries) {
    if (nodeEnis_.count(name) == 0) continue;
    const std::string text = toJson(list);
    if (appliedStatus_[name] == text) continue;
    Json::Value apply;
    apply["apiVersion"] = "networking.k8s.aws/v1alpha1";
    apply["kind"] = "NodeENI";
    apply["metadata"]["name"] = name;
    for (auto& e : list) e["lastUpdated"] = nowRfc3339();
    apply["status"]["attachments"] = list;
    ++kubeInFlight_;
    kube_.patch(ObjectRef{ResourceKind::nodeEnis(), "", name, "status"}, PatchType::Apply, apply,
                PatchOptions{"eni-agent/" + options_.nodeName, true},
                [this, name, text](Result<Json::Value> r) {
                  --kubeInFlight_;
                  if (r) {
                    appliedStatus_[name] = text;
                    auto& object = nodeEnis_[name];
                    object["status"] = objectField(*r, "status");
                    // Only a NodeENI being deleted may lose its finalizer now; a pass for any
                    // other would only confirm what this one did.
                    if (!stringField(objectField(object, "metadata"), "deletionTimestamp").empty())
                      markDirty();
                  } else if (r.error().code != ErrorCode::NotFound) {
                    logWarn("cannot write NodeENI status, will retry",
                            {{"nodeeni", name}, {"error", r.error().describe()}});
                  }
                });
  }
}

void EniManager::keepFinalizers(const PassOutput& out) {
  for (auto& [name, object] : nodeEnis_) {
    const Json::Value& meta = objectField(object, "metadata");
    std::vector<std::string> finalizers;
    for (const auto& f : arrayField(meta, "finalizers")) {
      if (f.isString()) finalizers.push_back(f.asString());
    }
    const bool has =
        std::find(finalizers.begin(), finalizers.end(), kNodeEniFinalizer) != finalizers.end();
    const bool deleting = !stringField(meta, "deletionTimestamp").empty();
    const bool ours = std::any_of(out.attached.begin(), out.attached.end(),
                                  [&](const Attached& a) { return a.record.nodeEni == name; });
    bool want = has;
    if (!deleting && ours && !has) want = true;
    if (deleting && has && arrayField(objectField(object, "status"), "attachments").empty())
      want = false;
    if (want == has) continue;
    Json::Value updated = object;
    Json::Value list(Json::arrayValue);
    for (const auto& f : finalizers) {
      if (f != kNodeEniFinalizer) list.append(f);
    }
    if (want) list.append(kNodeEniFinalizer);
    updated["metadata"]["finalizers"] = list;
    const std::string sentVersion = stringField(meta, "resourceVersion");
    ++kubeInFlight_;
    kube_.update(ObjectRef{ResourceKind::nodeEnis(), "", name, ""}, updated,
                 [this, name, want, sentVersion](Result<Json::Value> r) {
                   --kubeInFlight_;
                   if (r) {
                     logInfo(want ? "added the NodeENI finalizer" : "removed the NodeENI finalizer",
                             {{"nodeeni", name}});
                     // Keep what the server answered, unless a newer version came meanwhile:
                     // its watch event then changes nothing that needs a pass.
                     auto it = nodeEnis_.find(name);
                     if (it != nodeEnis_.end() && stringField(objectField(it->second, "metadata"),
                                                              "resourceVersion") == sentVersion) {
                       it->second = *r;
                     }
                   } else if (r.error().code == ErrorCode::Conflict) {
                     markDirty();  // the object moved on; the watch brings the new version
                   }
                 });
  }
}

void EniManager::publishAttachments() {
  if (!options_.onAttachments) return;
  std::vector<AttachmentRecord> records = attachments_;
  if (links_ != nullptr) {
    for (auto& r : records) {
      std::string mac = macOf_[r.eniId];
      std::transform(mac.begin(), mac.end(), mac.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      auto link = links_->links().find(mac);
      if (link == links_->links().end()) continue;
      r.interfaceName = link->second.name;
      r.state = std::string(toString(link->second.state));
    }
  }
  records.insert(records.end(), heldRecords_.begin(), heldRecords_.end());
  options_.onAttachments(
      records, std::vector<std::string>(recorded_.otherEnis.begin(), recorded_.otherEnis.end()),
      std::vector<std::string>(creating_.begin(), creating_.end()));
}

void EniManager::crashPoint(const char* where) const {
  if (options_.crashPoint != where) return;
  logWarn("crash point reached, killing myself (test hook)", {{"point", where}});
  raise(SIGKILL);
}

void EniManager::pruneDeadNodes() {
  // A NodeENI being deleted waits for every node's entries to go; a node whose Node object is gone
  // will never remove its own, so any agent prunes them.
  for (const auto& [name, object] : nodeEnis_) {
    if (stringField(objectField(object, "metadata"), "deletionTimestamp").empty()) continue;
    std::set<std::string> others;
    for (const auto& a : arrayField(objectField(object, "status"), "attachments")) {
      const std::string node = stringField(a, "nodeID");
      if (!node.empty() && node != options_.nodeName) others.insert(node);
    }
    for (const auto& node : others) {
      const std::string key = name + "/" + node;
      if (!pruning_.insert(key).second) continue;
      ++kubeInFlight_;
      kube_.get(ObjectRef{ResourceKind::nodes(), "", node, ""},
                [this, name, node, key](Result<Json::Value> r) {
                  --kubeInFlight_;
                  auto it = nodeEnis_.find(name);
                  if (r || r.error().code != ErrorCode::NotFound || it == nodeEnis_.end()) {
                    pruning_.erase(key);
                    return;
                  }
                  Json::Value updated = it->second;
                  Json::Value kept(Json::arrayValue);
                  for (const auto& a : arrayField(objectField(updated, "status"), "attachments")) {
                    if (stringField(a, "nodeID") != node) kept.append(a);
                  }
                  updated["status"]["attachments"] = kept;
                  ++kubeInFlight_;
                  kube_.update(ObjectRef{ResourceKind::nodeEnis(), "", name, "status"}, updated,
                               [this, name, node, key](Result<Json::Value> done) {
                                 --kubeInFlight_;
                                 pruning_.erase(key);
                                 if (done) {
                                   logInfo("pruned a deleted node's NodeENI entries",
                                           {{"nodeeni", name}, {"node", node}});
                                   nodeEnis_[name] = *done;
                                 }
                                 markDirty();
                               });
                });
    }
  }
}

void EniManager::reportProblems(const PassOutput& out) {
  std::map<std::string, std::string> now;
  for (const auto& p : out.problems) now[p.nodeEni] = p.message;
  for (const auto& [name, message] : now) {
    if (reportedProblems_[name] == message) continue;
    auto it = nodeEnis_.find(name);
    if (it == nodeEnis_.end()) continue;
    const Json::Value& meta = objectField(it->second, "metadata");
    Json::Value event;
    event["metadata"]["generateName"] = name + ".";
    event["metadata"]["namespace"] = "default";
    event["involvedObject"]["kind"] = "NodeENI";
    event["involvedObject"]["apiVersion"] = "networking.k8s.aws/v1alpha1";
    event["involvedObject"]["name"] = name;
    event["involvedObject"]["uid"] = stringField(meta, "uid");
    event["reason"] = "NodeENIInvalid";
    event["message"] = "node " + options_.nodeName + ": " + message;
    event["type"] = "Warning";
    event["source"]["component"] = "eni-agent";
    event["source"]["host"] = options_.nodeName;
    event["firstTimestamp"] = nowRfc3339();
    event["lastTimestamp"] = nowRfc3339();
    event["count"] = 1;
    ++kubeInFlight_;
    kube_.create(ObjectRef{ResourceKind::events(), "default", "", ""}, event,
                 [this](Result<Json::Value>) { --kubeInFlight_; });
  }
  reportedProblems_ = std::move(now);
}

}  // namespace eni
