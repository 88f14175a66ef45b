#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <json/value.h>

#include "agent/base/backoff.h"
#include "agent/base/timer.h"
#include "agent/kube/kube_api.h"
#include "agent/kube/reflector.h"
#include "agent/state/node_state_store.h"

namespace eni {

/// NodeStateStore over this node's eni-agent.io/state annotation (Kubernetes mode).
/// - Loaded from the first Node event. A record written by a newer agent is neither read nor
///   overwritten: the store stays empty, refuses every write and write-ahead, and problem() says
///   NewerVersion. A record that does not parse is ignored (a cold start).
/// - Written by a JSON merge patch of that key alone, after the debounce and only when its encoding
///   changed, one patch at a time and in order; a refused patch is retried with jittered backoff
///   (0.5 s doubling to 30 s), and write-aheads that come meanwhile wait for that retry.
/// - A later Node event that shows the annotation removed, or content this store did not write,
///   writes it again; the echoes of its own recent patches are not news.
/// Loop thread only.
class AnnotationStateStore final : public NodeStateStore {
 public:
  struct Options {
    std::string nodeName;
    Duration debounce{500};
    std::uint64_t backoffSeed = std::random_device{}();  // the retry jitter's; tests fix it
  };
  AnnotationStateStore(KubeApi& kube, Scheduler& scheduler, Options options);

  /// Wire to the NodeView's Node reflector.
  void onNode(ChangeType type, const Json::Value& object);

  bool loaded() const override { return loaded_; }
  const NodeState& current() const override { return state_; }
  void update(const std::function<void(NodeState&)>& change) override;
  void writeAhead(std::function<void(bool stored)> done) override;
  std::string problem() const override;
  bool idle() const override { return !inFlight_; }

 private:
  void load(const std::string& text);
  /// Writes after the debounce, or after `delay` when it is a retry.
  void schedule(std::optional<Duration> delay = std::nullopt);
  void write();
  void landed(const std::string& text);
  void settle(bool stored);
  /// encodeNodeState(state_), kept until the next update().
  const Result<std::string>& encoded();

  KubeApi& kube_;
  Options options_;
  NodeState state_;
  std::optional<Result<std::string>> encoded_;  // state_ encoded; empty after an update()
  EncodedEniRecords records_;                   // what encoded() reuses of the last encoding
  bool loaded_ = false;
  std::string written_;             // what the annotation holds, as far as this store knows
  std::deque<std::string> recent_;  // the last patches' text: their echoes are not news
  std::string sending_;             // the patch in flight
  std::string newer_;               // why the annotation, a newer agent's, is left alone
  Timer timer_;
  bool retrying_ = false;  // the armed timer is a retry after a refused patch
  bool inFlight_ = false;  // one patch at a time, in order
  Backoff backoff_;
  std::vector<std::function<void(bool stored)>> waiting_;  // write-aheads for the next patch
};

}  // namespace eni
