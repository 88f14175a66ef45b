#include "agent/state/annotation_state_store.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "agent/base/log.h"
#include "agent/kube/objects.h"

namespace eni {

AnnotationStateStore::AnnotationStateStore(KubeApi& kube, Scheduler& scheduler, Options options)
    : kube_(kube),
      options_(std::move(options)),
      timer_(scheduler,
             [this] {
               retrying_ = false;
               write();
             }),
      backoff_(Duration(500), Duration(30000), options_.backoffSeed) {}

void AnnotationStateStore::onNode(ChangeType type, const Json::Value& object) {
  if (type == ChangeType::Deleted) return;
  auto node = decodeNode(object);
  if (!node) return;
  auto it = node->meta.annotations.find(kNodeStateAnnotation);
  const std::string shown = it == node->meta.annotations.end() ? "" : it->second;
  if (!loaded_) return load(shown);
  // Later events: the annotation is this agent's record. Removed, or not what it wrote (the echo
  // of an earlier patch can arrive after a later one completed): write it again, or a restart
  // would miss what the agent owns.
  // The watch can show a patch before its answer arrives.
  if (!newer_.empty() || shown == written_ || (inFlight_ && shown == sending_)) return;
  if (std::find(recent_.begin(), recent_.end(), shown) != recent_.end()) return;
  if (written_.empty() && shown.empty()) return;  // nothing written yet
  logWarn("the node state annotation was removed or changed by someone else, writing it again",
          {{"node", options_.nodeName}});
  written_.clear();
  schedule();
}

void AnnotationStateStore::load(const std::string& text) {
  loaded_ = true;
  if (text.empty()) return;
  auto state = decodeNodeState(text);
  if (state) {
    state_ = std::move(*state);
    encoded_.reset();
    written_ = text;
    logInfo("loaded node state", {{"node", options_.nodeName},
                                  {"enis", state_.enis.size()},
                                  {"attachments", state_.attachments.size()}});
    return;
  }
  if (state.error().code == ErrorCode::Conflict) {
    // A rollback: the newer agent's record is neither trusted nor overwritten; nothing that
    // needs a record is done until that version is back.
    newer_ = state.error().message;
    logError(
        "the node state annotation was written by a newer eni-agent; not reading or "
        "overwriting it, and writing nothing that needs it: roll forward to that version",
        {{"node", options_.nodeName}, {"error", newer_}});
    return;
  }
  logWarn("ignoring the node state annotation, starting cold",
          {{"node", options_.nodeName}, {"error", state.error().message}});
}

std::string AnnotationStateStore::problem() const {
  if (newer_.empty()) return "";
  return "NewerVersion: the node's " + std::string(kNodeStateAnnotation) +
         " annotation: " + newer_ +
         "; this agent neither overwrites it nor writes what it would have to record";
}

void AnnotationStateStore::update(const std::function<void(NodeState&)>& change) {
  change(state_);
  encoded_.reset();
  if (loaded_) schedule();
}

const Result<std::string>& AnnotationStateStore::encoded() {
  // Once per change: schedule(), write() and landed() all compare it with what was written.
  if (!encoded_) encoded_ = encodeNodeState(state_, &records_);
  return *encoded_;
}

void AnnotationStateStore::writeAhead(std::function<void(bool stored)> done) {
  // Before the first Node event a write would replace the previous run's record.
  if (!loaded_ || !newer_.empty()) return done(false);
  waiting_.push_back(std::move(done));
  write();
}

void AnnotationStateStore::schedule(std::optional<Duration> delay) {
  if (timer_.enabled() || !newer_.empty()) return;
  const auto& encoded = this->encoded();
  if (!encoded) {
    logError("node state does not fit its annotation; the warm cache will be incomplete",
             {{"error", encoded.error().message}});
    return;
  }
  if (*encoded == written_) return;
  retrying_ = delay.has_value();
  timer_.enable(delay.value_or(options_.debounce));
}

void AnnotationStateStore::write() {
  if (!newer_.empty()) return settle(false);
  // One patch at a time, so an older state never lands after a write-ahead: the one in flight
  // writes again when it completes. After a refusal, the backoff's retry carries what comes.
  if (inFlight_ || retrying_) return;
  const auto& encoded = this->encoded();
  if (!encoded) return settle(false);
  if (*encoded == written_) return settle(true);
  Json::Value patch;
  patch["metadata"]["annotations"][kNodeStateAnnotation] = *encoded;
  // The write-aheads whose state this patch carries; later ones wait for the next patch.
  auto carried = std::exchange(waiting_, {});
  inFlight_ = true;
  sending_ = *encoded;
  timer_.disable();  // this patch carries whatever the debounce was waiting for
  PatchOptions options;
  options.discardBody = true;  // the whole Node, this annotation and all: only success matters
  options.echoed = true;       // the Node watch brings it back: its decoding reuses this text
  kube_.patch(ObjectRef{ResourceKind::nodes(), "", options_.nodeName, ""}, PatchType::Merge, patch,
              options,
              [this, text = *encoded, carried = std::move(carried)](Result<Json::Value> r) {
                inFlight_ = false;
                sending_.clear();
                for (const auto& done : carried) done(static_cast<bool>(r));
                if (!r) {
                  // Jittered backoff, as the watches: a fleet whose API server is away must not
                  // come back to a storm of patches.
                  const Duration delay = backoff_.next();
                  logWarn("cannot write the node state annotation, will retry",
                          {{"node", options_.nodeName},
                           {"in_ms", delay.count()},
                           {"error", r.error().describe()}});
                  return schedule(delay);
                }
                landed(text);
              });
}

void AnnotationStateStore::landed(const std::string& text) {
  backoff_.reset();
  written_ = text;
  recent_.push_back(text);
  if (recent_.size() > 4) recent_.pop_front();
  // Write-aheads that came while this patch was in flight: their patch now.
  if (!waiting_.empty()) return write();
  schedule();
}

void AnnotationStateStore::settle(bool stored) {
  for (auto& done : std::exchange(waiting_, {})) done(stored);
}

}  // namespace eni
