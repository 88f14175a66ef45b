#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "agent/base/clock.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/objects.h"

namespace eni {

/// The tagger's condition on its pods, and its record of the tags it applied (annotations).
inline constexpr const char* kTaggedConditionType = "eni-tagger.io/tagged";
inline constexpr const char* kLastAppliedTagsKey = "eni-tagger.io/last-applied-tags";
inline constexpr const char* kLastAppliedHashKey = "eni-tagger.io/last-applied-hash";

/// The tagger's writes to the pods of its node, each in the one shape that
/// daemonset/admission-policy.yaml lets an agent send: the condition and the last-applied
/// annotations on pods/status, the removal of those annotations and of k8s-eni-tagger's finalizer
/// on the pod. Each call sends one request (removeFinalizer none when there is nothing to remove)
/// and runs `done` (may be empty) once with its outcome; the codes are KubeApi's (NotFound: the pod
/// is gone, Conflict: it changed since `pod.resourceVersion`). Nothing is logged; the caller
/// decides. Loop thread only; must outlive the calls it starts (inFlight()).
class PodConditionWriter {
 public:
  using Done = std::function<void(Result<void>)>;

  PodConditionWriter(KubeApi& kube, const Clock& clock) : kube_(kube), clock_(clock) {}
  PodConditionWriter(const PodConditionWriter&) = delete;
  PodConditionWriter& operator=(const PodConditionWriter&) = delete;

  /// Sets the condition `desired.type` (status, reason, message) on pods/status by strategic
  /// merge patch: the list merges by type, so no other condition is touched. Its
  /// lastTransitionTime is the one of `observed` (the condition as the pod's latest watch event
  /// showed it, or nullptr) when the status stays the same, else now: it tells when the status
  /// last changed, not when the message did. desired.lastTransitionTime is ignored.
  void setCondition(const ObjectMeta& pod, const PodCondition& desired,
                    const PodCondition* observed, Done done);
  /// Records the tags applied to the pod's ENI (their JSON and hash) in its last-applied
  /// annotations and, when `desired` is not null, sets that condition as setCondition does, in
  /// one request: a strategic merge patch of pods/status with those two keys (and the condition)
  /// alone. The API server applies the annotations sent to a pod's status subresource (checked
  /// in tests/integration/kube_writers_test.cpp), so a pod just tagged costs one write, not two.
  void recordLastApplied(const ObjectMeta& pod, const std::string& tagsJson,
                         const std::string& hash, const PodCondition* desired,
                         const PodCondition* observed, Done done);
  /// Removes both last-applied annotations (JSON merge patch setting them to null).
  void clearLastApplied(const ObjectMeta& pod, Done done);
  /// Removes `finalizer` from the pod, keeping the others in order, by JSON merge patch of
  /// metadata.finalizers conditional on pod.resourceVersion (Conflict when the pod changed since
  /// `pod` was read, so no finalizer added meanwhile is lost). When pod.finalizers does not hold
  /// it, sends nothing and succeeds.
  void removeFinalizer(const ObjectMeta& pod, const std::string& finalizer, Done done);

  /// Writes sent and not yet answered: part of a caller's idle().
  std::size_t inFlight() const { return inFlight_; }

 private:
  /// The condition as sent: lastTransitionTime kept from `observed` while the status stays.
  Json::Value condition(const PodCondition& desired, const PodCondition* observed) const;
  void send(const ObjectMeta& pod, const std::string& subresource, PatchType type,
            const Json::Value& body, Done done);

  KubeApi& kube_;
  const Clock& clock_;
  std::size_t inFlight_ = 0;
};

}  // namespace eni
