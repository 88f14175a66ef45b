// EC2 5xx, connection resets and a delay beyond the client's 10 s timeout, aimed at
// AttachNetworkInterface while a NodeENI is applied and at DetachNetworkInterface while it is
// removed. The timed-out call still reaches moto after the client gave up, so the agent meets
// an ENI attached behind its back. It converges: one ENI per subnet, never a duplicate (counted
// in moto by ownership tags), and on removal none left and the NodeENI gone.
#include <set>

#include "agent/enimanager/eni_planner.h"
#include "tests/faults/drill.h"

namespace eni::faults {
namespace {

using AttachDrill = Drill;

// Attempt 1: 503 Unavailable; 2: reset; 3: held 10.5 s, past the client's timeout, then
// forwarded anyway; 4 and later: through.
std::string faultsOn(const std::string& action) {
  return R"([{"action":")" + action + R"(","fault":"unavailable","count":1},
             {"action":")" +
         action + R"(","fault":"reset","count":1},
             {"action":")" +
         action + R"(","fault":"delay","delay_ms":10500,"count":1}])";
}

TEST_F(AttachDrill, UnavailableResetAndTimeoutOnAttachAndDetachConvergeWithoutDuplicates) {
  const std::string neni = "fd-attach-detach";
  createNode({{"fd-attach", "yes"}});
  const std::vector<std::string> subnets = {stack().subnetB, stack().subnetC};
  setProxyRules(faultsOn("AttachNetworkInterface"));
  createNodeEni(neni, "fd-attach", "yes", subnets, 50);
  auto agent = startAgent({"--enable-tagger=false"});

  std::vector<NodeEniAttachment> status;
  ASSERT_TRUE(eventually([&] {
    status = statusOf(neni);
    if (status.size() != 2) return false;
    for (const auto& a : status)
      if (a.status != "attached" || a.eniId.empty()) return false;
    return ownedEnis(neni).size() == 2;
  })) << agent->output().substr(0, 20000);

  // No duplicate: one ENI per subnet, each attached once to the instance, as the status says.
  auto enis = ownedEnis(neni);
  ASSERT_EQ(enis.size(), 2u) << "no duplicate ENI";
  std::set<std::string> seenSubnets;
  std::set<std::string> statusEnis;
  for (const auto& a : status) statusEnis.insert(a.eniId);
  for (const auto& e : enis) {
    seenSubnets.insert(e.subnetId);
    ASSERT_TRUE(e.attachment) << e.id;
    EXPECT_EQ(e.attachment->instanceId, stack().instanceId);
    EXPECT_EQ(statusEnis.count(e.id), 1u) << e.id << " is the one the status names";
  }
  EXPECT_EQ(seenSubnets, std::set<std::string>(subnets.begin(), subnets.end()));
  auto stats = proxyStats();
  EXPECT_EQ(stats["faults"].get("AttachNetworkInterface", 0).asInt(), 3);
  EXPECT_EQ(stats["requests"].get("CreateNetworkInterface", 0).asInt(), 2)
      << "a failed attach never leads to a second create";

  // Removal under the same faults on Detach: nothing left, and the NodeENI can go.
  resetProxy();
  setProxyRules(faultsOn("DetachNetworkInterface"));
  setNodeLabel("fd-attach", "");
  ASSERT_TRUE(eventually([&] { return ownedEnis(neni).empty() && statusOf(neni).empty(); }))
      << agent->output().substr(0, 20000);
  stats = proxyStats();
  EXPECT_EQ(stats["faults"].get("DetachNetworkInterface", 0).asInt(), 3);
  EXPECT_EQ(stats["requests"].get("DeleteNetworkInterface", 0).asInt(), 2)
      << agent->output().substr(0, 20000);
  deleteNodeEni(neni);
  ASSERT_TRUE(eventually([&] {
    auto r = getNodeEni(neni);
    return !r && r.error().code == ErrorCode::NotFound;
  })) << "the finalizer is removed";
  EXPECT_EQ(agent->terminate(), 0);
}

}  // namespace
}  // namespace eni::faults
