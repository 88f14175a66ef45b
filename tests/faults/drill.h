#pragma once

// Shared scaffolding of the fault drills: the real eni-agent binary against the real test stack
// (kube-apiserver + etcd, moto behind the fault proxy, the IMDS emulator). A drill breaks a peer,
// churns pods or NodeENIs, and then asserts on outcomes that it counts in moto, the API server
// and the proxy's log, never on time. Every wait is a bounded poll.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/event_loop.h"
#include "agent/eni/tags.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/objects.h"
#include "ec2/curl_ec2_client.h"
#include "tests/support/static_credentials.h"
#include "tests/support/test_stack.h"

namespace eni::faults {

/// A pod of a drill and the branch ENI behind it (found through vpc.amazonaws.com/pod-eni).
struct DrillPod {
  std::string name;
  std::string eni;
  std::string ip;
  std::string annotation;  // the eni-tagger.io/tags value it carries now ("" for none)
  bool live = false;       // exists in the API server
  bool created = false;    // was ever created (a deleted pod is not brought back)
};

/// One attempt of an EC2 call as the fault proxy saw it.
struct ProxyAttempt {
  std::string action;
  std::string fault;  // "" when forwarded
  int status = 0;     // 0 for a reset
  std::string invocation;
  int attempt = 0;
};

/// The tags every drill ENI carries from birth and that the agent does not own: they must
/// survive whatever the drill does.
inline const TagSet kForeignTags{{"Owner", "someone-else"}, {"cost:center", "9999"}};

class Drill : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // --- Kubernetes, as the cluster admin.
  Result<Json::Value> call(const std::function<void(Callback<Json::Value>)>& start);
  void createNamespace();
  void createNode(const std::map<std::string, std::string>& labels = {});
  void setNodeLabel(const std::string& key, const std::string& value);  // "" removes it
  /// Creates the pod on the drill's node and plays the kubelet (IP, Running).
  void createPod(DrillPod& pod, const std::string& annotation);
  void annotate(DrillPod& pod, const std::string& annotation);
  void deletePod(DrillPod& pod);
  int kubectl(const std::vector<std::string>& args);
  /// The reason of the pod's eni-tagger.io/tagged condition ("" when it has none).
  std::string conditionReason(const DrillPod& pod);

  /// A NodeENI selecting nodes labelled `selectorKey=selectorValue`, one ENI per subnet.
  void createNodeEni(const std::string& name, const std::string& selectorKey,
                     const std::string& selectorValue, const std::vector<std::string>& subnets,
                     int deviceIndex);
  void deleteNodeEni(const std::string& name);
  /// NotFound once it is gone.
  Result<NodeEni> getNodeEni(const std::string& name);
  /// This drill node's status entries of the NodeENI (none when it is gone).
  std::vector<NodeEniAttachment> statusOf(const std::string& name);

  // --- EC2, straight to moto (not through the proxy, so the proxy counts only the agent).
  /// `n` branch ENIs in subnet C carrying kForeignTags, as pods of this drill.
  std::vector<DrillPod> makePods(int n, const std::string& prefix);
  /// Tags of these ENIs, in one Describe.
  std::map<std::string, TagSet> tagsOf(const std::vector<std::string>& enis);
  /// What is wrong with the pods' ENIs: for a live pod with tags T, the ENI must carry exactly
  /// T + hash(T) + kForeignTags; for a deleted or untagged pod, kForeignTags only. Empty when
  /// everything converged.
  std::vector<std::string> tagMismatches(const std::vector<DrillPod>& pods);
  /// Polls (eventually) until tagMismatches(pods) is empty. On failure: how many differ, the
  /// first, and the start of the agent's output when `agent` is given.
  ::testing::AssertionResult tagsConverge(const std::vector<DrillPod>& pods,
                                          const testing::BackgroundProcess* agent = nullptr);
  /// ENIs whose ownership tags name this drill's node (and optionally one NodeENI).
  std::vector<NetworkInterface> ownedEnis(const std::string& nodeEni = "");

  // --- The fault proxy.
  Json::Value proxyStats();
  std::vector<ProxyAttempt> proxyLog();
  void setProxyRules(const std::string& rulesJson);
  void resetProxy();

  // --- The agent under test.
  std::vector<std::string> agentArgs(const std::vector<std::string>& extra = {}) const;
  std::unique_ptr<testing::BackgroundProcess> startAgent(
      const std::vector<std::string>& extraArgs = {},
      const std::vector<std::string>& extraEnv = {});
  /// GET on the agent's health or metrics address -> {status, body} (0 when unreachable).
  std::pair<long, std::string> probe(const std::string& path) const;
  /// The value of a /metrics series, -1 when absent.
  double metric(const std::string& series) const;

  /// Polls `done` every `everyMs` at most `rounds` times. A bound on failure, not a timing
  /// assertion.
  static bool eventually(const std::function<bool()>& done, int rounds = 600, int everyMs = 250);

  const testing::TestStack& stack() const { return testing::TestStack::get(); }

  EventLoop loop_;
  HttpClient http_{loop_};
  std::unique_ptr<CurlKubeClient> admin_;
  SystemClock clock_;
  RealSleeper sleeper_;
  testing::StaticCredentials creds_;
  std::unique_ptr<CurlEc2Client> moto_;
  std::string name_;  // lower-case test name
  std::string node_;
  std::string ns_;
  std::vector<std::string> env_;  // agentEnv() of this drill: its own health/metrics ports
};

}  // namespace eni::faults
