#include "agent/kube/pod_condition_writer.h"

#include <algorithm>
#include <utility>

namespace eni {

Json::Value PodConditionWriter::condition(const PodCondition& desired,
                                          const PodCondition* observed) const {
  const bool sameStatus = observed != nullptr && observed->status == desired.status &&
                          !observed->lastTransitionTime.empty();
  Json::Value condition;
  condition["type"] = desired.type;
  condition["status"] = desired.status;
  condition["reason"] = desired.reason;
  condition["message"] = desired.message;
  condition["lastTransitionTime"] =
      sameStatus ? observed->lastTransitionTime : formatTimestamp(clock_.wallSeconds());
  return condition;
}

void PodConditionWriter::setCondition(const ObjectMeta& pod, const PodCondition& desired,
                                      const PodCondition* observed, Done done) {
  Json::Value patch;
  patch["status"]["conditions"][0] = condition(desired, observed);
  send(pod, "status", PatchType::Strategic, patch, std::move(done));
}

void PodConditionWriter::recordLastApplied(const ObjectMeta& pod, const std::string& tagsJson,
                                           const std::string& hash, const PodCondition* desired,
                                           const PodCondition* observed, Done done) {
  Json::Value patch;
  patch["metadata"]["annotations"][kLastAppliedTagsKey] = tagsJson;
  patch["metadata"]["annotations"][kLastAppliedHashKey] = hash;
  if (desired != nullptr) patch["status"]["conditions"][0] = condition(*desired, observed);
  send(pod, "status", PatchType::Strategic, patch, std::move(done));
}

void PodConditionWriter::clearLastApplied(const ObjectMeta& pod, Done done) {
  Json::Value patch;
  patch["metadata"]["annotations"][kLastAppliedTagsKey] = Json::Value();
  patch["metadata"]["annotations"][kLastAppliedHashKey] = Json::Value();
  send(pod, "", PatchType::Merge, patch, std::move(done));
}

void PodConditionWriter::removeFinalizer(const ObjectMeta& pod, const std::string& finalizer,
                                         Done done) {
  const auto& held = pod.finalizers;
  if (std::find(held.begin(), held.end(), finalizer) == held.end()) {
    if (done) done({});
    return;
  }
  // A merge patch replaces the whole list: the others go back as they are, and the
  // resourceVersion makes it refuse a list that changed meanwhile.
  Json::Value finalizers(Json::arrayValue);
  for (const auto& f : held) {
    if (f != finalizer) finalizers.append(f);
  }
  Json::Value patch;
  patch["metadata"]["finalizers"] = finalizers;
  patch["metadata"]["resourceVersion"] = pod.resourceVersion;
  send(pod, "", PatchType::Merge, patch, std::move(done));
}

void PodConditionWriter::send(const ObjectMeta& pod, const std::string& subresource, PatchType type,
                              const Json::Value& body, Done done) {
  ++inFlight_;
  PatchOptions options;
  options.discardBody = true;  // only success matters: the pod the answer carries is not parsed
  kube_.patch(ObjectRef{ResourceKind::pods(), pod.ns, pod.name, subresource}, type, body, options,
              [this, done = std::move(done)](Result<Json::Value> answer) {
                --inFlight_;
                if (!done) return;
                if (answer)
                  done({});
                else
                  done(fail(answer.error()));
              });
}

}  // namespace eni
