// The ENI manager end to end: the real kube-apiserver (as the agent's ServiceAccount), moto
// through the fault proxy, the IMDS emulator, and real kernel links in a network namespace of
// the test's making. The test plays the kernel: once an ENI is attached in moto, it creates a veth
// with that ENI's MAC in the namespace the agent manages (--link-netns).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "agent/base/event_loop.h"
#include "agent/base/executor.h"
#include "agent/base/json.h"
#include "agent/enimanager/eni_manager.h"
#include "agent/enimanager/link_reconciler.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_view.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "netlink/link_dump.h"
#include "netlink/nl_link_manager.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::await;
using testing::TestStack;

class StaticCredentials final : public CredentialProvider {
 public:
  Result<Credentials> credentials() override {
    Credentials c;
    c.accessKeyId = "AKIATESTING";
    c.secretAccessKey = "testing";
    c.source = "test";
    return c;
  }
};

struct ManagerAgent {
  ManagerAgent(const std::string& node, const std::string& netns)
      : imds(imdsConfigFromEnv([](const std::string& n) -> std::optional<std::string> {
               if (n == "AWS_EC2_METADATA_SERVICE_ENDPOINT") return TestStack::get().imdsEndpoint;
               return std::nullopt;
             }),
             clock, sleeper),
        ec2(config(), credentials, clock, sleeper),
        kube(http, *loadKubeconfig(TestStack::get().agentKubeconfig)),
        worker(loop),
        links(loop, netns),
        reconciler(links, clock),
        manager(kube, ec2, imds, loop, worker, sleeper, &reconciler, options(node)),
        view(kube, loop, node,
             {nullptr, [this](ChangeType t, const Json::Value& o) { manager.onNode(t, o); },
              [this](ChangeType t, const Json::Value& o) { manager.onNodeEni(t, o); },
              [this] { manager.start(); }},
             true) {
    EXPECT_TRUE(links.start([this](const LinkEvent& e) { reconciler.onEvent(e); }));
    view.start();
  }
  static Ec2ClientConfig config() {
    Ec2ClientConfig c;
    c.region = TestStack::get().region;
    c.endpoint = TestStack::get().ec2ProxyEndpoint;
    return c;
  }
  static EniManagerOptions options(const std::string& node) {
    EniManagerOptions o;
    o.nodeName = node;
    o.detachPollInterval = Duration(100);
    return o;
  }
  bool runUntil(const std::function<bool()>& done, int limitMs = 60000) {
    return loop.runUntil(done, Duration(limitMs));
  }
  bool settle() {
    int quiet = 0;
    return runUntil([&] {
      quiet = (view.synced() && manager.passes() > 0 && manager.idle()) ? quiet + 1 : 0;
      return quiet >= 6;
    });
  }

  SystemClock clock;
  RealSleeper sleeper;
  StaticCredentials credentials;
  CurlImds imds;
  CurlEc2Client ec2;
  EventLoop loop;
  HttpClient http{loop};
  CurlKubeClient kube;
  WorkerThread worker;
  NlLinkManager links;
  LinkReconciler reconciler;
  EniManager manager;
  NodeView view;
};

class EniManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u)
        << "these tests manage links in a network namespace: run as root (CI does)";
    admin_ =
        std::make_unique<CurlKubeClient>(http_, *loadKubeconfig(TestStack::get().adminKubeconfig));
    Ec2ClientConfig c;
    c.region = TestStack::get().region;
    c.endpoint = TestStack::get().motoEndpoint;
    ec2_ = std::make_unique<CurlEc2Client>(c, creds_, clock_, sleeper_);
    auto ns = testing::TestNetns::create("eni-test-manager");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
  }

  Result<Json::Value> call(const std::function<void(Callback<Json::Value>)>& start) {
    return await<Json::Value>(loop_, start);
  }

  void createNode(const std::string& name, std::map<std::string, std::string> labels) {
    Json::Value node;
    node["metadata"]["name"] = name;
    for (const auto& [k, v] : labels) node["metadata"]["labels"][k] = v;
    node["spec"]["providerID"] = "aws:///us-east-1a/" + TestStack::get().instanceId;
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::nodes(), "", "", ""}, node, done);
    }));
  }
  void setLabel(const std::string& node, const std::string& key, const Json::Value& value) {
    Json::Value patch;
    patch["metadata"]["labels"][key] = value;
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::nodes(), "", node, ""}, PatchType::Merge, patch, {},
                    done);
    }));
  }
  std::vector<NetworkInterface> enisOf(const std::string& nodeEni, const std::string& node) {
    auto r =
        ec2_->describeNetworkInterfaces({}, {{"tag:NodeENI", {nodeEni}}, {"tag:Node", {node}}});
    EXPECT_TRUE(r) << r.error().describe();
    return r.value_or(std::vector<NetworkInterface>{});
  }
  Result<NodeEni> getNodeEni(const std::string& name, Json::Value* raw = nullptr) {
    auto r = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""}, done);
    });
    if (!r) return fail(r.error());
    if (raw != nullptr) *raw = *r;
    return decodeNodeEni(*r);
  }

  EventLoop loop_;
  HttpClient http_{loop_};
  std::unique_ptr<CurlKubeClient> admin_;
  SystemClock clock_;
  RealSleeper sleeper_;
  StaticCredentials creds_;
  std::unique_ptr<CurlEc2Client> ec2_;
  std::optional<testing::TestNetns> ns_;
};

TEST_F(EniManagerTest, TwoSubnetsGiveTwoEnisUpWithTheirMtuThenUnlabelAndDeleteCleanUp) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-e2e";
  createNode(node, {{"ng", "multi-eni"}});
  auto instance = ec2_->describeInstance(stack.instanceId);
  ASSERT_TRUE(instance);
  std::set<std::int64_t> used;
  for (const auto& n : instance->networkInterfaces) {
    if (n.attachment) used.insert(n.attachment->deviceIndex);
  }
  const std::int64_t first = freeDeviceIndex(1, used);
  used.insert(first);
  const std::int64_t second = freeDeviceIndex(2, used);

  // The aws-multi-eni-controller README's multi-subnet sample, with this stack's IDs, plus mtu.
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "multi-subnet-eni";
  neni["spec"]["nodeSelector"]["ng"] = "multi-eni";
  neni["spec"]["subnetIDs"][0] = stack.subnetB;
  neni["spec"]["subnetIDs"][1] = stack.subnetC;
  neni["spec"]["securityGroupIDs"][0] = stack.securityGroupId;
  neni["spec"]["deviceIndex"] = 1;
  neni["spec"]["deleteOnTermination"] = true;
  neni["spec"]["description"] = "ENI with multiple subnets";
  neni["spec"]["mtu"] = 9000;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));

  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 2; }));
  ASSERT_TRUE(agent.settle());

  auto enis = enisOf("multi-subnet-eni", node);
  ASSERT_EQ(enis.size(), 2u);
  std::set<std::int64_t> indexes;
  for (const auto& e : enis) {
    ASSERT_TRUE(e.attachment) << e.id;
    EXPECT_EQ(e.attachment->instanceId, stack.instanceId);
    indexes.insert(e.attachment->deviceIndex);
    EXPECT_EQ(tagValue(e, kNoManageTag), "true");
    EXPECT_EQ(tagValue(e, kManagedByTag), "eni-agent");
    EXPECT_EQ(tagValue(e, kInstanceIdTag), stack.instanceId);
    EXPECT_EQ(e.description, "ENI with multiple subnets");
  }
  EXPECT_EQ(indexes, (std::set<std::int64_t>{first, second}));

  // Play the kernel: the attached ENIs appear as links with their MACs, down.
  int i = 0;
  for (const auto& e : enis) {
    ++i;
    ASSERT_TRUE(ns_->addVeth("eth" + std::to_string(i), e.macAddress, "peer" + std::to_string(i)));
  }
  ASSERT_TRUE(agent.runUntil([&] {
    const auto& links = agent.reconciler.links();
    return links.size() == 2 && std::all_of(links.begin(), links.end(), [](const auto& l) {
             return l.second.state == LinkState::Configured;
           });
  }));
  auto kernel = dumpLinks(ns_->path());
  ASSERT_TRUE(kernel);
  int up = 0;
  for (const auto& l : *kernel) {
    if ((l.name == "eth1" || l.name == "eth2") && l.adminUp() && l.mtu == 9000) ++up;
  }
  EXPECT_EQ(up, 2);

  Json::Value raw;
  auto status = getNodeEni("multi-subnet-eni", &raw);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->attachments.size(), 2u);
  for (const auto& a : status->attachments) EXPECT_EQ(a.nodeId, node);
  EXPECT_NE(
      std::find(status->meta.finalizers.begin(), status->meta.finalizers.end(), kNodeEniFinalizer),
      status->meta.finalizers.end());

  // The node stops matching: both ENIs are detached and deleted, and its entries go.
  setLabel(node, "ng", Json::Value());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().empty(); }));
  ASSERT_TRUE(agent.settle());
  EXPECT_TRUE(enisOf("multi-subnet-eni", node).empty());
  status = getNodeEni("multi-subnet-eni");
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->attachments.empty());

  // Deleting the NodeENI: the finalizer clears and the object goes.
  auto del = testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "delete",
                                  "nodeeni", "multi-subnet-eni", "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = getNodeEni("multi-subnet-eni");
    return !r && r.error().code == ErrorCode::NotFound;
  }));
}

}  // namespace
}  // namespace eni
