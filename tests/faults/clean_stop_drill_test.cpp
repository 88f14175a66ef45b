// A clean stop (SIGTERM, as a rolling update sends it) on a node whose node state is large enough
// for its writes to go in the overlay (eni-agent.io/state-pending): the agent writes the whole
// state before it exits, so that eni-agent.io/state alone, which an older agent reads after a
// rollback, records every tag the agent may own, and no overlay is left behind.
#include <algorithm>
#include <string>

#include "agent/state/node_state.h"
#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

class StopDrill : public Drill {
 protected:
  Json::Value nodeAnnotations() {
    auto node = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::nodes(), "", node_, ""}, done);
    });
    EXPECT_TRUE(node) << node.error().describe();
    return node ? (*node)["metadata"]["annotations"] : Json::Value();
  }
};

TEST_F(StopDrill, SigtermOnALargeNodeLeavesTheWholeStateAndNoOverlay) {
  createNamespace();
  createNode();
  // About 250 bytes a record: 36 records are some 9 KB, past the 8 KiB from which a write carries
  // only what changed.
  auto pods = makePods(36, "stop");
  ASSERT_EQ(pods.size(), 36u);
  auto tagsFor = [](const DrillPod& pod, const std::string& round) {
    return "Team=platform-" + pod.name + ",CostCenter=cc-0000-" + round + ",Application=checkout-" +
           pod.name;
  };
  for (auto& pod : pods) createPod(pod, tagsFor(pod, "a"));

  // The overlay's own compaction (5 s after it is first written) can come before the stop on a
  // slow machine; then the stop had nothing to do and the round says nothing: it goes again.
  std::string why;
  for (int round = 0; round < 3; ++round) {
    auto agent = startAgent();
    ASSERT_TRUE(tagsConverge(pods, agent.get()));
    // Written whole once the burst is over, and large.
    ASSERT_TRUE(eventually([&] {
      const Json::Value a = nodeAnnotations();
      return !a.isMember(kNodeStatePendingAnnotation) &&
             a.get(kNodeStateAnnotation, "").asString().size() >= 8192;
    })) << nodeAnnotations().toStyledString();

    // One pod changes: its pass's write-ahead goes in the overlay. The stop comes as soon as the
    // overlay is seen.
    DrillPod& pod = pods[static_cast<std::size_t>(round)];
    const std::string key = "Stop" + std::to_string(round);
    annotate(pod, tagsFor(pod, "b") + "," + key + "=yes");
    ASSERT_TRUE(eventually([&] { return nodeAnnotations().isMember(kNodeStatePendingAnnotation); },
                           400, 25))
        << agent->output();
    EXPECT_EQ(agent->terminate(), 0) << agent->output();

    const Json::Value after = nodeAnnotations();
    EXPECT_FALSE(after.isMember(kNodeStatePendingAnnotation))
        << "the overlay outlived the stop: " << after.toStyledString();
    auto state = decodeNodeState(after.get(kNodeStateAnnotation, "").asString());
    ASSERT_TRUE(state) << state.error().message;
    ASSERT_EQ(state->enis.count(pod.eni), 1u) << after.toStyledString();
    // The new key is owned, or pending when the stop came before its CreateTags landed: either
    // way eni-agent.io/state alone knows the agent may own it.
    const EniRecord& record = state->enis.at(pod.eni);
    const bool known = record.tags.count(key) != 0 ||
                       std::count(record.pendingKeys.begin(), record.pendingKeys.end(), key) != 0;
    EXPECT_TRUE(known) << key << " is not in the record of " << pod.eni << ": "
                       << after.get(kNodeStateAnnotation, "").asString();
    EXPECT_EQ(state->enis.size(), pods.size()) << "every pod's ENI is still recorded";
    if (agent->output().find("writing the whole node state before stopping") != std::string::npos)
      return;  // the stop wrote it
    why = "round " + std::to_string(round) + ": the overlay was compacted before the stop";
  }
  FAIL() << why;
}

}  // namespace
}  // namespace eni::faults
