#include "agent/state/annotation_state_store.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "agent/base/json.h"
#include "agent/base/log.h"

namespace eni {

AnnotationStateStore::AnnotationStateStore(KubeApi& kube, Scheduler& scheduler, Options options)
    : kube_(kube),
      options_(std::move(options)),
      timer_(scheduler,
             [this] {
               retrying_ = false;
               write();
             }),
      compactTimer_(scheduler,
                    [this] {
                      compactDue_ = true;
                      next_.reset();
                      schedule();
                    }),
      backoff_(Duration(500), Duration(30000), options_.backoffSeed) {}

void AnnotationStateStore::onNode(ChangeType type, const Json::Value& object) {
  if (type == ChangeType::Deleted) return;
  const Json::Value& meta = objectField(object, "metadata");
  if (stringField(meta, "name").empty()) return;  // not a Node
  // Read in place: the state is tens of KiB, and each patch of it comes back in a Node event; it
  // is copied only when kept.
  const Json::Value& annotations = objectField(meta, "annotations");
  const std::string_view state = stringFieldView(annotations, kNodeStateAnnotation);
  const std::string_view pending = stringFieldView(annotations, kNodeStatePendingAnnotation);
  if (!loaded_) return load(std::string(state), std::string(pending));
  // Later events: the annotations are this agent's record. Removed, or not what it wrote (the
  // echo of an earlier patch can arrive after a later one completed): write it again, or a
  // restart would miss what the agent owns.
  if (!newer_.empty() || (state == base_.text && pending == pending_)) return;
  auto is = [&](const Shown& s) { return s.is(state, pending); };
  // The watch can show a patch before its answer arrives.
  if (inFlight_ && sending_ && is(*sending_)) return;
  if (std::any_of(recent_.begin(), recent_.end(), is)) return;
  logWarn("the node state annotation was removed or changed by someone else, writing it again",
          {{"node", options_.nodeName}});
  setBase({});  // the whole state, and no overlay over what is there now
  pending_ = std::string(pending);
  next_.reset();
  schedule();
}

void AnnotationStateStore::load(const std::string& text, const std::string& overlay) {
  loaded_ = true;
  pending_ = overlay;
  if (text.empty()) {
    if (!overlay.empty()) {
      logWarn("ignoring the pending node state: there is no node state for it to change",
              {{"node", options_.nodeName}});
      schedule();  // the full state's write removes it
    }
    return;
  }
  auto state = decodeNodeState(text);
  if (!state) {
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
    return;
  }
  setBase(nodeStateBase(text, *state, &records_));
  if (!overlay.empty()) {
    auto applied = applyNodeStateOverlay(*state, text, overlay);
    if (!applied && applied.error().code == ErrorCode::Conflict) {
      newer_ = applied.error().message;
      setBase({});
      logError(
          "the pending node state annotation was written by a newer eni-agent; not reading or "
          "overwriting it, and writing nothing that needs it: roll forward to that version",
          {{"node", options_.nodeName}, {"error", newer_}});
      return;
    }
    if (!applied) {
      // Someone wrote the state since (an older agent after a rollback does not know the
      // overlay): what it says no longer applies. The full write removes it.
      logWarn("ignoring the pending node state annotation",
              {{"node", options_.nodeName}, {"error", applied.error().message}});
      compactDue_ = true;
    }
  }
  state_ = std::move(*state);
  next_.reset();
  logInfo("loaded node state", {{"node", options_.nodeName},
                                {"enis", state_.enis.size()},
                                {"attachments", state_.attachments.size()}});
  // The main key catches up with a loaded overlay as it would with one this process wrote.
  if (compactDue_)
    schedule();
  else if (!pending_.empty())
    compactTimer_.enable(options_.compactAfter);
}

std::string AnnotationStateStore::problem() const {
  if (newer_.empty()) return "";
  return "NewerVersion: the node's " + std::string(kNodeStateAnnotation) +
         " annotation: " + newer_ +
         "; this agent neither overwrites it nor writes what it would have to record";
}

void AnnotationStateStore::update(const std::function<void(NodeState&)>& change) {
  change(state_);
  next_.reset();
  // What to write is worked out when the debounce ends (a pass updates several times), or by the
  // landing of the patch in flight.
  if (loaded_ && newer_.empty() && !inFlight_ && !timer_.enabled())
    timer_.enable(options_.debounce);
}

const Result<AnnotationStateStore::Write>& AnnotationStateStore::next() {
  // Once per change: schedule() and write() both compare it with what is written.
  if (next_) return *next_;
  if (!base_.text.empty() && !compactDue_ && !overlayRefused_ &&
      base_.text.size() >= options_.overlayFrom) {
    std::string overlay = encodeNodeStateOverlay(state_, base_, records_);
    if (overlay.size() * 2 <= base_.text.size() &&
        base_.text.size() + overlay.size() <= NodeState::kMaxBytes) {
      return next_.emplace(Write{false, "", std::move(overlay)});
    }
  }
  auto full = encodeNodeState(state_, &records_);
  if (!full) return next_.emplace(fail(full.error()));
  return next_.emplace(Write{true, std::move(*full), ""});
}

bool AnnotationStateStore::unchanged(const Write& w) const {
  return w.full ? w.state == base_.text && pending_.empty() : w.pending == pending_;
}

void AnnotationStateStore::setBase(NodeStateBase base) {
  base_ = std::move(base);
  baseText_.reset();
}

const std::shared_ptr<const std::string>& AnnotationStateStore::baseText() {
  if (!baseText_) baseText_ = std::make_shared<const std::string>(base_.text);
  return baseText_;
}

AnnotationStateStore::Shown AnnotationStateStore::shown(const Write& w) {
  return w.full ? Shown{std::make_shared<const std::string>(w.state), ""}
                : Shown{baseText(), w.pending};
}

void AnnotationStateStore::writeAhead(std::function<void(bool stored)> done) {
  // Before the first Node event a write would replace the previous run's record.
  if (!loaded_ || !newer_.empty()) return done(false);
  waiting_.push_back(std::move(done));
  write();
}

void AnnotationStateStore::compactNow(std::function<void()> done) {
  if (!loaded_ || !newer_.empty()) return done();
  const bool wasDue = std::exchange(compactDue_, true);
  next_.reset();
  if (const auto& next = this->next(); next && unchanged(*next)) {
    compactDue_ = wasDue;  // already whole: the writes after it go on as before
    next_.reset();
    return done();
  }
  logInfo("writing the whole node state before stopping", {{"node", options_.nodeName}});
  writeAhead([done = std::move(done)](bool) { done(); });
}

void AnnotationStateStore::schedule(std::optional<Duration> delay) {
  if (timer_.enabled() || !newer_.empty()) return;
  const auto& next = this->next();
  if (!next) {
    logError("node state does not fit its annotation; the warm cache will be incomplete",
             {{"error", next.error().message}});
    return;
  }
  if (unchanged(*next)) return;
  retrying_ = delay.has_value();
  timer_.enable(delay.value_or(options_.debounce));
}

void AnnotationStateStore::write() {
  if (!newer_.empty()) return settle(false);
  // One patch at a time, so an older state never lands after a write-ahead: the one in flight
  // writes again when it completes. After a refusal, the backoff's retry carries what comes.
  if (inFlight_ || retrying_) return;
  const auto& next = this->next();
  if (!next) return settle(false);
  if (unchanged(*next)) return settle(true);
  Write sent = *next;
  std::optional<NodeStateBase> base;
  const Json::Value patch = patchFor(sent, base);
  // The write-aheads whose state this patch carries; later ones wait for the next patch.
  auto carried = std::exchange(waiting_, {});
  inFlight_ = true;
  sending_ = shown(sent);
  timer_.disable();  // this patch carries whatever the debounce was waiting for
  PatchOptions options;
  options.discardBody = true;  // the whole Node, this annotation and all: only success matters
  options.echoed = true;       // the Node watch brings it back: its decoding reuses this text
  kube_.patch(ObjectRef{ResourceKind::nodes(), "", options_.nodeName, ""}, PatchType::Merge, patch,
              options,
              [this, sent = std::move(sent), base = std::move(base),
               carried = std::move(carried)](Result<Json::Value> r) mutable {
                inFlight_ = false;
                sending_.reset();
                for (const auto& done : carried) done(static_cast<bool>(r));
                if (!r) return refused(sent, r.error());
                landed(std::move(sent), std::move(base));
              });
}

Json::Value AnnotationStateStore::patchFor(const Write& sent, std::optional<NodeStateBase>& base) {
  Json::Value patch;
  auto& annotations = patch["metadata"]["annotations"];
  if (!sent.full) {
    annotations[kNodeStatePendingAnnotation] =
        sent.pending.empty() ? Json::Value::null : Json::Value(sent.pending);
    return patch;
  }
  annotations[kNodeStateAnnotation] = sent.state;
  annotations[kNodeStatePendingAnnotation] = Json::Value::null;
  // What the state holds once this lands, for the overlays after it.
  base = nodeStateBase(sent.state, state_, &records_);
  return patch;
}

void AnnotationStateStore::refused(const Write& sent, const Error& error) {
  if (!sent.full && error.code == ErrorCode::Permission && !overlayRefused_) {
    // An admission policy from before the overlay: the whole state each time still works under
    // it. Once per process.
    overlayRefused_ = true;
    next_.reset();
    logWarn(
        "eni-agent.io/state-pending was refused; writing the whole node state each time "
        "instead: apply the admission policy shipped with this agent",
        {{"node", options_.nodeName}, {"error", error.describe()}});
  }
  // Jittered backoff, as the watches: a fleet whose API server is away must not come back to a
  // storm of patches.
  const Duration delay = backoff_.next();
  logWarn("cannot write the node state annotation, will retry",
          {{"node", options_.nodeName}, {"in_ms", delay.count()}, {"error", error.describe()}});
  schedule(delay);
}

void AnnotationStateStore::landed(Write sent, std::optional<NodeStateBase> base) {
  backoff_.reset();
  recent_.push_back(shown(sent));
  if (recent_.size() > 4) recent_.pop_front();
  if (base) {
    setBase(std::move(*base));
    pending_.clear();
    compactDue_ = false;
    compactTimer_.disable();
    next_.reset();
  } else {
    // The next write is still what it was (same state, same base): only what it is compared
    // with changed.
    pending_ = std::move(sent.pending);
    if (!pending_.empty() && !compactTimer_.enabled()) compactTimer_.enable(options_.compactAfter);
  }
  // Write-aheads that came while this patch was in flight: their patch now.
  if (!waiting_.empty()) return write();
  schedule();
}

void AnnotationStateStore::settle(bool stored) {
  for (auto& done : std::exchange(waiting_, {})) done(stored);
}

}  // namespace eni
