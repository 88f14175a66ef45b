// The agent SIGKILLed 20 times at seeded random moments while pods and NodeENIs churn, and
// restarted each time. Afterwards: no leaked and no duplicate ENI (counted in moto by ownership
// tags), no owned tag lost, and every tag the agent does not own still in place.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

using KillDrill = Drill;

TEST_F(KillDrill, TwentySigkillsDuringPodAndNodeEniChurnLeakNothingAndLoseNoTag) {
  std::uint64_t seed = 20261123;
  if (const char* s = std::getenv("ENI_DRILL_SEED")) seed = std::strtoull(s, nullptr, 10);
  std::mt19937_64 rng(seed);
  std::cout << "kill drill seed " << seed << " (set ENI_DRILL_SEED to replay)" << std::endl;
  RecordProperty("seed", std::to_string(seed));
  auto draw = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  createNamespace();
  createNode({{"fd-kill", "yes"}});
  auto pods = makePods(24, "kill");
  ASSERT_EQ(pods.size(), 24u);
  const std::vector<std::string> nodeEnis = {"fd-kill-a", "fd-kill-b", "fd-kill-c"};
  std::map<std::string, bool> nodeEniLive;

  auto churn = [&](std::string& done) {
    for (int n = draw(3, 8); n > 0; --n) {
      const int what = draw(0, 9);
      auto& pod = pods[draw(0, static_cast<int>(pods.size()) - 1)];
      if (what <= 4) {
        const std::string value = draw(0, 5) == 0 ? ""
                                                  : "Team=t" + std::to_string(draw(0, 3)) +
                                                        ",Kill=k" + std::to_string(draw(0, 2));
        if (!pod.created) {
          createPod(pod, value);
          done += " create " + pod.name;
        } else if (pod.live) {
          annotate(pod, value);
          done += " annotate " + pod.name + "=" + value;
        }
      } else if (what <= 6) {
        if (pod.live) {
          deletePod(pod);
          done += " delete " + pod.name;
        }
      } else {
        const int which = draw(0, 2);
        const auto& name = nodeEnis[which];
        if (!nodeEniLive[name]) {
          // A deleted NodeENI stays until the agent removes its finalizer; its name is reused
          // only once it is gone.
          auto existing = getNodeEni(name);
          if (!existing && existing.error().code == ErrorCode::NotFound) {
            createNodeEni(name, "fd-kill", "yes", {stack().subnetC}, 70 + which);
            nodeEniLive[name] = true;
            done += " create nodeeni " + name;
          }
        } else if (draw(0, 1) == 0) {
          deleteNodeEni(name);
          nodeEniLive[name] = false;
          done += " delete nodeeni " + name;
        }
      }
    }
  };

  // Half the pods exist and are tagged before the first kill, so that deletions and changes
  // meet tags the agent owns.
  for (std::size_t i = 0; i < pods.size(); i += 2)
    createPod(pods[i], "Team=t" + std::to_string(i % 4) + ",Kill=start");
  for (int kill = 0; kill < 20; ++kill) {
    auto agent = startAgent();
    std::string done;
    churn(done);
    const int after = draw(200, 4000);
    std::this_thread::sleep_for(std::chrono::milliseconds(after));
    agent->signal(SIGKILL);
    agent.reset();
    std::cout << "kill " << kill + 1 << " at " << after << " ms after churn:" << done << std::endl;
  }

  auto agent = startAgent();
  std::vector<std::string> problems;
  // Each round reads moto and the API server several times: 240 rounds stay well inside ctest's
  // timeout, so a failing run still prints its diagnosis.
  const bool converged = eventually(
      [&] {
        problems = tagMismatches(pods);
        for (const auto& name : nodeEnis) {
          const auto enis = ownedEnis(name);
          if (nodeEniLive[name]) {
            const auto status = statusOf(name);
            if (enis.size() != 1 || !enis[0].attachment || status.size() != 1 ||
                status[0].eniId != enis[0].id || status[0].status != "attached") {
              problems.push_back(name + ": " + std::to_string(enis.size()) + " ENIs, " +
                                 std::to_string(status.size()) + " status entries");
            }
          } else {
            auto r = getNodeEni(name);
            const bool gone = !r && r.error().code == ErrorCode::NotFound;
            if (!enis.empty() || (!gone && !statusOf(name).empty())) {
              problems.push_back(name + " (deleted): " + std::to_string(enis.size()) +
                                 " ENIs left");
            }
          }
        }
        return problems.empty();
      },
      240);
  ASSERT_TRUE(converged) << problems.size() << " problems, first: " << problems[0] << "\n"
                         << agent->output().substr(0, 20000);

  // Leaks by ownership tag, across every NodeENI name: exactly one per live NodeENI.
  std::size_t live = 0;
  for (const auto& [name, isLive] : nodeEniLive) live += isLive;
  EXPECT_EQ(ownedEnis().size(), live) << "no leaked and no duplicate ENI";
  EXPECT_EQ(agent->terminate(), 0);
}

}  // namespace
}  // namespace eni::faults
