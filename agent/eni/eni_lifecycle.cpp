#include "agent/eni/eni_lifecycle.h"

#include <signal.h>

#include <memory>
#include <utility>

#include "agent/base/log.h"

namespace eni {

OwnedFilter OwnedFilter::byNode(const std::string& node) { return {{{"tag:Node", {node}}}}; }

OwnedFilter OwnedFilter::byInstance(const std::string& instanceId) {
  return {{{std::string("tag:") + kInstanceIdTag, {instanceId}},
           {std::string("tag:") + kManagedByTag, {"eni-agent"}}}};
}

EniLifecycle::EniLifecycle(Ec2Api& ec2, Executor& releases, Sleeper& sleeper,
                           EniLifecycleOptions options)
    : ec2_(ec2), releases_(releases), sleeper_(sleeper), options_(std::move(options)) {
  if (options_.releaseConcurrency == 0) options_.releaseConcurrency = 1;
}

Result<std::vector<NetworkInterface>> EniLifecycle::findOwned(const OwnedFilter& filter) {
  return ec2_.describeNetworkInterfaces({}, filter.filters);
}

std::string ensureFailureText(const EnsureResult& result, const EnsureStep& step) {
  if (!result.failure) return "";
  const Error& e = result.failure->error;
  const std::string retry = e.retryable() ? "; will retry" : "";
  std::string text;
  switch (result.failure->step) {
    case EniActionKind::Adopt:
      text = "cannot adopt " + result.eni.id;
      break;
    case EniActionKind::Attach:
      text = "cannot attach " + result.eni.id + " at device index " +
             (step.attachAt ? std::to_string(*step.attachAt) : std::string("?"));
      break;
    default:
      text = "cannot create an ENI in " + step.desired.subnetId;
  }
  return text + ": " + e.describe() + retry;
}

namespace {

CreateEniRequest createRequest(const DesiredEni& d) {
  CreateEniRequest request;
  request.subnetId = d.subnetId;
  request.securityGroupIds = d.securityGroupIds;
  request.description = d.description;
  request.clientToken = d.clientToken;
  request.tags = d.tags;
  return request;
}

EnsureResult stopped(EnsureResult r, EniActionKind step, Error error) {
  r.failure = EnsureFailure{step, std::move(error)};
  return r;
}

}  // namespace

EnsureResult EniLifecycle::ensureAttached(const EnsureStep& step, const Ownership& ownership,
                                          DeleteOnTerminationMemo& memo, const OnEniKnown& known) {
  EnsureResult r;
  r.owner = step.desired.nodeEni;
  r.eni = step.eni;
  const std::string& me = ownership.instanceId;
  if (step.adopt) {
    if (auto ok = ec2_.createTags(
            {r.eni.id},
            {{kManagedByTag, "eni-agent"}, {kInstanceIdTag, me}, {kNoManageTag, "true"}});
        !ok) {
      return stopped(std::move(r), EniActionKind::Adopt, ok.error());
    }
    logInfo("adopted an ENI made by aws-multi-eni-controller",
            {{"eni", r.eni.id}, {"owner", r.owner}});
  } else if (!step.create && !step.recorded) {
    logInfo("adopted own ENI", {{"eni", r.eni.id}, {"owner", r.owner}});
  }
  if (step.create) {
    auto created = ec2_.createNetworkInterface(createRequest(step.desired));
    if (!created) return stopped(std::move(r), EniActionKind::Create, created.error());
    r.eni = std::move(*created);
    r.created = true;
    if (r.eni.tags.empty()) r.eni.tags = step.desired.tags;
    logInfo("created ENI",
            {{"eni", r.eni.id}, {"owner", r.owner}, {"subnet", step.desired.subnetId}});
    crashPoint("created");
  }
  // Before the attach: the kernel announces the interface about a second after it, and that
  // event configures the link only if the loop knows the MAC by then.
  if (known && !r.eni.macAddress.empty()) known(r.eni);
  if (step.attachAt) {
    auto attachment = ec2_.attachNetworkInterface(r.eni.id, me, *step.attachAt);
    if (!attachment) return stopped(std::move(r), EniActionKind::Attach, attachment.error());
    r.eni.attachment = EniAttachment{*attachment, me, *step.attachAt, "attached", false};
    logInfo("attached ENI", {{"eni", r.eni.id}, {"device_index", *step.attachAt}});
    crashPoint("attached");
  }
  r.attached = true;
  const std::string attachment = r.eni.attachment ? r.eni.attachment->attachmentId : "";
  const bool wanted = step.desired.deleteOnTermination;
  if (step.assumeDeleteOnTermination) memo.assume(attachment, wanted);
  if (!step.setDeleteOnTermination) return r;
  if (auto ok = ec2_.setDeleteOnTermination(r.eni.id, attachment, wanted); !ok) {
    memo.forget(attachment);
    r.deleteOnTermination = ok.error();
  } else {
    memo.set(attachment, wanted);
    if (r.eni.attachment) r.eni.attachment->deleteOnTermination = wanted;
  }
  return r;
}

void EniLifecycle::release(ReleaseStep step, ReleaseGrounds grounds,
                           std::function<void(ReleaseResult)> done) {
  queued_.push_back({std::move(step), std::move(grounds), std::move(done)});
  dispatch();
}

void EniLifecycle::dispatch() {
  while (inFlight_ < options_.releaseConcurrency && !queued_.empty()) {
    auto job = std::make_shared<Queued>(std::move(queued_.front()));
    queued_.pop_front();
    ++inFlight_;
    auto result = std::make_shared<ReleaseResult>();
    releases_.run([this, job, result] { *result = releaseNow(job->step, job->grounds); },
                  [this, job, result] {
                    --inFlight_;
                    dispatch();
                    job->done(std::move(*result));
                  });
  }
}

Result<std::optional<NetworkInterface>> EniLifecycle::describeOne(const std::string& eniId) {
  // By filter: an ENI that is gone is an empty answer, not an error. Either way it is gone.
  auto now = ec2_.describeNetworkInterfaces({}, {{"network-interface-id", {eniId}}});
  if (!now) {
    if (now.error().code == ErrorCode::NotFound) return std::optional<NetworkInterface>{};
    return fail(now.error());
  }
  for (auto& e : *now) {
    if (e.id == eniId) return std::optional<NetworkInterface>(std::move(e));
  }
  return std::optional<NetworkInterface>{};
}

Result<void> EniLifecycle::waitDetached(const std::string& eniId) {
  for (int i = 0; i < options_.detachPolls; ++i) {
    if (stopping_) return fail(ErrorCode::Transient, "the agent is stopping");
    auto now = describeOne(eniId);
    if (now) {
      const std::optional<NetworkInterface>& shown = *now;
      if (!shown || shown->status == "available") return {};
    }
    sleeper_.sleepFor(options_.detachPollInterval);
  }
  return fail(ErrorCode::Transient, "ENI " + eniId + " is still attached after the detach");
}

ReleaseResult EniLifecycle::releaseNow(const ReleaseStep& step, const ReleaseGrounds& grounds) {
  ReleaseResult r{step.eni.id, step.owner, ReleaseOutcome::Failed, "", step.eni};
  if (!step.described) {
    auto fresh = describeOne(step.eni.id);
    if (!fresh) {
      r.message =
          "cannot check ENI " + r.eniId + " before releasing it: " + fresh.error().describe();
      return r;
    }
    std::optional<NetworkInterface>& shown = *fresh;
    if (!shown) return {r.eniId, r.owner, ReleaseOutcome::Gone, "", step.eni};
    r.eni = std::move(*shown);
  }
  if (std::string why = refusal(r.eni, grounds); !why.empty()) {
    r.outcome = ReleaseOutcome::Refused;
    r.message = why;
    return r;
  }
  const NetworkInterface& e = r.eni;
  if (e.attachment && !e.attachment->attachmentId.empty() && e.attachment->status != "detached") {
    if (auto ok = ec2_.detachNetworkInterface(e.attachment->attachmentId, false);
        !ok && ok.error().code != ErrorCode::NotFound) {
      r.message = "cannot detach ENI " + r.eniId + ": " + ok.error().describe();
      return r;
    }
    if (auto ok = waitDetached(r.eniId); !ok) {
      r.message = ok.error().message;
      return r;
    }
  }
  if (auto ok = ec2_.deleteNetworkInterface(r.eniId);
      !ok && ok.error().code != ErrorCode::NotFound) {
    r.message = "cannot delete ENI " + r.eniId + ": " + ok.error().describe();
    return r;
  }
  r.outcome = ReleaseOutcome::Released;
  return r;
}

std::string EniLifecycle::refusal(const NetworkInterface& eni, const ReleaseGrounds& grounds) {
  const bool mode = tagValue(eni, "NodeENI").rfind(grounds.ownerPrefix, 0) == 0;
  if (!ownedBy(eni, grounds.instanceId) || !mode) {
    return "it lacks eni-agent's ownership tags for " + grounds.instanceId;
  }
  const ReleaseDecision d = releasable(eni, grounds.records, grounds.instanceId, grounds.creating);
  return d.release ? "" : d.reason;
}

TagWriteOutcome EniLifecycle::applyTagPlans(const std::vector<EniPlan>& plans) {
  TagWriteOutcome out;
  // Identical changes share a call; DeleteTags after CreateTags, and none on an ENI whose
  // CreateTags failed (its record stays as it was).
  for (const auto& write : coalesceWrites(plans)) {
    std::vector<std::string> resources;
    for (const auto& id : write.resources) {
      if (write.create || out.failed.count(id) == 0) resources.push_back(id);
    }
    if (resources.empty()) continue;
    std::vector<Tag> tags;
    for (const auto& [k, v] : write.tags) tags.push_back({k, v});
    auto done = write.create ? ec2_.createTags(resources, tags) : ec2_.deleteTags(resources, tags);
    if (done) continue;
    ++out.failedCalls;
    for (const auto& id : resources) {
      out.failed[id] = {std::string(write.create ? "CreateTags" : "DeleteTags") + " on " + id +
                            " failed: " + done.error().describe(),
                        done.error().retryable(), write.create};
    }
  }
  return out;
}

void logDryRun(const EniActions& actions) {
  for (const auto& step : actions.ensure) {
    std::string kinds;
    for (auto kind : step.kinds())
      kinds += (kinds.empty() ? "" : "+") + std::string(toString(kind));
    logInfo("dry run: would ensure an ENI", {{"owner", step.desired.nodeEni},
                                             {"subnet", step.desired.subnetId},
                                             {"eni", step.eni.id},
                                             {"actions", kinds}});
  }
  for (const auto& owner : actions.awaitWriteAhead) {
    logInfo("dry run: would record the write-ahead and create an ENI", {{"owner", owner}});
  }
  for (const auto& r : actions.release) {
    logInfo("dry run: would detach and delete ENI", {{"eni", r.eni.id}, {"owner", r.owner}});
  }
  for (const auto& n : actions.held) {
    logInfo("dry run: would keep ENI", {{"eni", n.eni.id}, {"reason", n.reason}});
  }
  for (const auto& n : actions.refused) {
    logInfo("dry run: would leave ENI alone", {{"eni", n.eni.id}, {"reason", n.reason}});
  }
}

void EniLifecycle::crashPoint(const char* where) const {
  if (options_.crashPoint != where) return;
  logWarn("crash point reached, killing myself (test hook)", {{"point", where}});
  raise(SIGKILL);
}

}  // namespace eni
