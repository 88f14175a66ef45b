#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <json/value.h>

#include "agent/base/backoff.h"
#include "agent/base/timer.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/reflector.h"
#include "agent/state/node_state_store.h"

namespace eni {

/// NodeStateStore over this node's eni-agent.io/state annotation (Kubernetes mode).
/// - Loaded from the first Node event, with eni-agent.io/state-pending applied over it. A record
///   written by a newer agent is neither read nor overwritten: the store stays empty, refuses
///   every write and write-ahead, and problem() says NewerVersion. A record that does not parse is
///   ignored (a cold start); an overlay that does not parse or is stale is ignored and removed.
/// - Written by a JSON merge patch of those keys alone, after the debounce and only when the state
///   changed, one patch at a time and in order; a refused patch is retried with jittered backoff
///   (0.5 s doubling to 30 s), and write-aheads that come meanwhile wait for that retry.
/// - Once eni-agent.io/state is options.overlayFrom bytes or more, a write carries only what
///   changed since it was written, in eni-agent.io/state-pending, so that a pass on a node of a
///   hundred ENIs sends a few records, not all. The whole state is written again (and the overlay
///   removed, in the same patch) options.compactAfter after the first overlay, or sooner when the
///   overlay would be over half the state's size or the two over the 64 KiB budget.
///   An overlay refused for permission (an admission policy from before it) turns overlays off.
/// - A later Node event that shows either annotation removed, or content this store did not
///   write, writes the whole state again; the echoes of its own recent patches are not news.
/// Loop thread only.
class AnnotationStateStore final : public NodeStateStore {
 public:
  struct Options {
    std::string nodeName;
    Duration debounce{500};
    std::uint64_t backoffSeed = std::random_device{}();  // the retry jitter's; tests fix it
    std::size_t overlayFrom =
        std::size_t{8} * 1024;    // the state's size from which writes use the overlay
    Duration compactAfter{5000};  // the longest an overlay stays before the full write
  };
  AnnotationStateStore(KubeApi& kube, Scheduler& scheduler, Options options);

  /// Wire to the NodeView's Node reflector.
  void onNode(ChangeType type, const Json::Value& object);

  bool loaded() const override { return loaded_; }
  const NodeState& current() const override { return state_; }
  void update(const std::function<void(NodeState&)>& change) override;
  void writeAhead(std::function<void(bool stored)> done) override;
  std::string problem() const override;
  /// Writes the whole state now (and removes the overlay) when eni-agent.io/state is not all of
  /// it, the debounce's changes included: a clean stop leaves that key whole (and logs that it
  /// writes). `done` once that write landed or failed, or at once when there is nothing to write.
  void compactNow(std::function<void()> done);
  bool idle() const override { return !inFlight_; }

 private:
  /// What a patch makes the two annotations hold: the whole state and no overlay (full), or the
  /// state as it is there and `pending` ("" removes it).
  struct Write {
    bool full = false;
    std::string state;    // full only
    std::string pending;  // not full only
  };
  /// The two annotations' values, as a Node event shows them. An overlay's patch leaves the state
  /// as it is: its text is shared with the base's (baseText()), not copied per patch.
  struct Shown {
    std::shared_ptr<const std::string> state;
    std::string pending;
    bool is(std::string_view s, std::string_view p) const { return *state == s && pending == p; }
  };

  void load(const std::string& text, const std::string& overlay);
  /// Writes after the debounce, or after `delay` when it is a retry.
  void schedule(std::optional<Duration> delay = std::nullopt);
  void write();
  /// The merge patch that makes the annotations hold `sent`; for the whole state, `base` is what
  /// eni-agent.io/state holds once it lands.
  Json::Value patchFor(const Write& sent, std::optional<NodeStateBase>& base);
  void refused(const Write& sent, const Error& error);
  void landed(Write sent, std::optional<NodeStateBase> base);
  void settle(bool stored);
  /// The next write, kept until the next update(), landing or compaction.
  const Result<Write>& next();
  bool unchanged(const Write& w) const;
  Shown shown(const Write& w);
  /// base_.text, shared; made again after base_ changed (setBase).
  const std::shared_ptr<const std::string>& baseText();
  void setBase(NodeStateBase base);

  KubeApi& kube_;
  Options options_;
  NodeState state_;
  std::optional<Result<Write>> next_;  // empty after an update()
  EncodedEniRecords records_;          // the state's ENI records encoded, reused while unchanged
  bool loaded_ = false;
  NodeStateBase base_;       // what eni-agent.io/state holds, as far as this store knows
  std::string pending_;      // what eni-agent.io/state-pending holds, as far as this store knows
  bool compactDue_ = false;  // the next write is the full state
  bool overlayRefused_ = false;  // the API server refused the overlay: full writes only
  std::shared_ptr<const std::string> baseText_;  // see baseText()
  std::deque<Shown> recent_;      // the last patches' result: their echoes are not news
  std::optional<Shown> sending_;  // the result of the patch in flight
  std::string newer_;             // why the annotation, a newer agent's, is left alone
  Timer timer_;
  Timer compactTimer_;
  bool retrying_ = false;  // the armed timer is a retry after a refused patch
  bool inFlight_ = false;  // one patch at a time, in order
  Backoff backoff_;
  std::vector<std::function<void(bool stored)>> waiting_;  // write-aheads for the next patch
};

}  // namespace eni
