// The kube-apiserver restarted in the middle of a pod churn, then an etcd compaction while the
// agent is frozen, so its watch resumes from a compacted version and gets 410 Gone. No pod
// update may be missed: at the end the ENI tags in moto match the final annotations.
#include <csignal>

#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

using ApiServerDrill = Drill;

std::string tags(const std::string& team, int round) {
  return R"({"Team":")" + team + R"(","Round":")" + std::to_string(round) + R"("})";
}

TEST_F(ApiServerDrill, RestartMidChurnAndCompactionWith410MissNoPodUpdate) {
  createNamespace();
  createNode();
  auto pods = makePods(40, "api");
  ASSERT_EQ(pods.size(), 40u);
  auto agent = startAgent({"--enable-eni-manager=false"});
  ASSERT_TRUE(agent->waitForOutput("\"msg\":\"ready\"", 60000)) << agent->output();

  // Round 1 and the restart in its middle.
  for (int i = 0; i < 20; ++i) createPod(pods[i], tags("a", 1));
  ASSERT_EQ(stack().control({"restart", "kube-apiserver"}), 0);
  for (int i = 20; i < 40; ++i) createPod(pods[i], tags("b", 1));
  for (int i = 0; i < 40; i += 2) annotate(pods[i], tags("c", 2));

  // Round 2: the agent is frozen (its watches sit at old versions) while pods change, etcd
  // compacts past those versions and the API server restarts (dropping the watches and its
  // cache). Thawed, the agent resumes from a compacted version: 410, relist.
  agent->signal(SIGSTOP);
  for (int i = 1; i < 40; i += 2) annotate(pods[i], tags("d", 3));
  for (int i = 0; i < 40; i += 8) deletePod(pods[i]);
  for (int i = 2; i < 40; i += 4) annotate(pods[i], "");
  ASSERT_EQ(stack().control({"compact"}), 0);
  ASSERT_EQ(stack().control({"restart", "kube-apiserver"}), 0);
  for (int i = 3; i < 40; i += 4) annotate(pods[i], tags("e", 4));
  agent->signal(SIGCONT);

  ASSERT_TRUE(tagsConverge(pods, agent.get()));
  // Pod writes that failed while the API server was away are retried: every tagged pod shows
  // Synced.
  std::string stale;
  EXPECT_TRUE(eventually(
      [&] {
        stale.clear();
        for (const auto& p : pods) {
          if (p.live && !p.annotation.empty() && conditionReason(p) != "Synced") stale = p.name;
        }
        return stale.empty();
      },
      120))
      << stale << " does not show Synced";
  EXPECT_NE(agent->output().find("watch version expired, relisting"), std::string::npos)
      << "the drill must really have forced a 410";
  EXPECT_TRUE(agent->running());
  EXPECT_EQ(agent->terminate(), 0);
}

}  // namespace
}  // namespace eni::faults
