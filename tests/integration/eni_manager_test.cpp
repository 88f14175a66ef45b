// The ENI manager end to end: the real kube-apiserver (as the agent's ServiceAccount), moto
// through the fault proxy, the IMDS emulator, and real kernel links in a network namespace of
// the test's making. The test plays the kernel: once an ENI is attached in moto, it creates a veth
// with that ENI's MAC in the namespace the agent manages (--link-netns).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>

#include "agent/base/event_loop.h"
#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/strings.h"
#include "agent/base/worker_pool.h"
#include "agent/dpdk/sysfs.h"
#include "agent/eni/link_reconciler.h"
#include "agent/enimanager/eni_manager.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/node_view.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "agent/state/node_state.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "netlink/link_dump.h"
#include "netlink/nl_link_manager.h"
#include "tests/support/eventually.h"
#include "tests/support/fake_state_store.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/static_credentials.h"
#include "tests/support/sysfs_emulator.h"
#include "tests/support/test_stack.h"
#include "tests/support/virtual_node.h"

namespace eni {
namespace {

using testing::await;
using testing::TestStack;

using testing::StaticCredentials;
using testing::VirtualNode;

// The agent's log lines while it lives (the manager logs from its worker thread too).
class LogCapture {
 public:
  LogCapture() {
    logging::setSink([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex_);
      lines_.push_back(line);
    });
  }
  ~LogCapture() { logging::setSink(nullptr); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  /// The lines that contain every one of `parts`.
  std::vector<std::string> matching(const std::vector<std::string>& parts) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& line : lines_) {
      if (std::all_of(parts.begin(), parts.end(),
                      [&](const std::string& p) { return line.find(p) != std::string::npos; }))
        out.push_back(line);
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

struct ManagerAgent {
  ManagerAgent(const std::string& node, const std::string& netns,
               Duration maxCleanup = std::chrono::minutes(30))
      : imds(imdsConfigFromEnv([](const std::string& n) -> std::optional<std::string> {
               if (n == "AWS_EC2_METADATA_SERVICE_ENDPOINT") return TestStack::get().imdsEndpoint;
               return std::nullopt;
             }),
             clock, sleeper),
        ec2(config(), credentials, clock, sleeper),
        kube(http, *loadKubeconfig(TestStack::get().agentKubeconfig)),
        worker(loop),
        releases(loop, 3),
        lifecycle(ec2, releases, sleeper, lifecycleOptions()),
        links(loop, netns),
        reconciler(links, clock),
        manager(kube, ec2, imds, loop, clock, worker, lifecycle, store, &reconciler,
                options(node, maxCleanup)),
        view(kube, loop, node,
             {nullptr,
              [this](ChangeType t, const Json::Value& o) {
                // The node state is the Node's annotation, as its first event shows it.
                if (!store.loaded())
                  store.loadAnnotation(
                      o["metadata"]["annotations"].get(kNodeStateAnnotation, "").asString());
                manager.onNode(t, o);
              },
              [this](ChangeType t, const Json::Value& o) { manager.onNodeEni(t, o); },
              [this] { manager.start(); }},
             true) {
    store.onSave = [this](const NodeState& s) { published = s.attachments; };
    EXPECT_TRUE(links.start([this](const LinkEvent& e) { reconciler.onEvent(e); }));
    view.start();
  }
  static Ec2ClientConfig config() {
    Ec2ClientConfig c;
    c.region = TestStack::get().region;
    c.endpoint = TestStack::get().ec2ProxyEndpoint;
    return c;
  }
  static EniManagerOptions options(const std::string& node, Duration maxCleanup) {
    EniManagerOptions o;
    o.nodeName = node;
    o.maxCleanupDuration = maxCleanup;
    o.writeAhead = false;           // the binary's crash tests cover it
    o.checkInterval = Duration(0);  // passes are counted: only events start them here
    return o;
  }
  static EniLifecycleOptions lifecycleOptions() {
    EniLifecycleOptions o;
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

  std::vector<AttachmentRecord> published;  // what the node-state annotation would record
  SystemClock clock;
  RealSleeper sleeper;
  StaticCredentials credentials;
  CurlImds imds;
  CurlEc2Client ec2;
  EventLoop loop;
  HttpClient http{loop};
  CurlKubeClient kube;
  WorkerThread worker;
  WorkerPool releases;  // EniLifecycle's release executor
  EniLifecycle lifecycle;
  testing::FakeStateStore store{testing::FakeStateStore::unloaded()};
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
  // An ENI attached to the stack's instance and tagged directly in moto (not through the agent),
  // as a pod annotation or any tool allowed CreateTags could: eni-agent's ownership tags for this
  // instance, for NodeENI "ghost" on `node`. With `secondaryIps`, it holds pod addresses as a VPC
  // CNI secondary ENI does.
  NetworkInterface forgedEni(const std::string& node, std::int64_t wantedIndex, int secondaryIps) {
    const auto& stack = TestStack::get();
    CreateEniRequest request;
    request.subnetId = stack.subnetC;
    auto eni = ec2_->createNetworkInterface(request);
    EXPECT_TRUE(eni) << eni.error().describe();
    if (!eni) return {};
    auto instance = ec2_->describeInstance(stack.instanceId);
    EXPECT_TRUE(instance);
    std::set<std::int64_t> used;
    for (const auto& n : instance->networkInterfaces) {
      if (n.attachment) used.insert(n.attachment->deviceIndex);
    }
    EXPECT_TRUE(ec2_->attachNetworkInterface(eni->id, stack.instanceId,
                                             freeDeviceIndex(wantedIndex, used)));
    if (secondaryIps > 0) {
      auto assigned =
          ec2_->call("AssignPrivateIpAddresses",
                     {{"NetworkInterfaceId", eni->id},
                      {"SecondaryPrivateIpAddressCount", std::to_string(secondaryIps)}});
      EXPECT_TRUE(assigned) << assigned.error().describe();
    }
    EXPECT_TRUE(ec2_->createTags({eni->id}, {{"Node", node},
                                             {"NodeENI", "ghost"},
                                             {"SubnetID", stack.subnetC},
                                             {kManagedByTag, "eni-agent"},
                                             {kInstanceIdTag, stack.instanceId}}));
    auto now = ec2_->describeNetworkInterfaces({eni->id}, {});
    EXPECT_TRUE(now && now->size() == 1u);
    return now && now->size() == 1u ? (*now)[0] : NetworkInterface{};
  }
  void removeForged(const NetworkInterface& eni) {
    auto now = ec2_->describeNetworkInterfaces({eni.id}, {});
    if (!now || now->empty()) return;
    if ((*now)[0].attachment) {
      EXPECT_TRUE(ec2_->detachNetworkInterface((*now)[0].attachment->attachmentId, true));
    }
    EXPECT_TRUE(ec2_->deleteNetworkInterface(eni.id));
  }
  // A NodeENI for nodes labelled ng=<label>, already holding its finalizer, whose subnet name no
  // subnet has: a node it selects gets a problem and no ENI.
  void createUnsatisfiableNodeEni(const std::string& name, const std::string& label) {
    Json::Value neni;
    neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
    neni["kind"] = "NodeENI";
    neni["metadata"]["name"] = name;
    neni["metadata"]["finalizers"][0] = kNodeEniFinalizer;
    neni["spec"]["nodeSelector"]["ng"] = label;
    neni["spec"]["subnetName"] = "no-such-subnet";
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
    }));
  }
  void createNodeEni(const std::string& name, const std::string& label, std::int64_t index,
                     const Json::Value& moreSpec = Json::Value()) {
    Json::Value neni;
    neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
    neni["kind"] = "NodeENI";
    neni["metadata"]["name"] = name;
    neni["spec"]["nodeSelector"]["forged"] = label;
    neni["spec"]["subnetID"] = TestStack::get().subnetC;
    neni["spec"]["deviceIndex"] = static_cast<Json::Int64>(index);
    for (const auto& key : moreSpec.getMemberNames()) neni["spec"][key] = moreSpec[key];
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
    }));
  }
  // A NodeENI spec edit: the next pass cannot trust the records, so it reads EC2.
  void forceEc2Pass(ManagerAgent& agent, const std::string& nodeEni, const std::string& text) {
    const auto passes = agent.manager.passes();
    const int reads = proxyRequests("DescribeNetworkInterfaces");
    Json::Value patch;
    patch["spec"]["description"] = text;
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::nodeEnis(), "", nodeEni, ""}, PatchType::Merge, patch,
                    {}, done);
    }));
    ASSERT_TRUE(agent.runUntil([&] { return agent.manager.passes() > passes; }));
    ASSERT_TRUE(agent.settle());
    ASSERT_GT(proxyRequests("DescribeNetworkInterfaces"), reads) << "the pass read EC2";
  }
  static int proxyRequests(const std::string& action) {
    const auto& stack = TestStack::get();
    const Json::Value stats =
        *parseJson(stack.controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
    return stats["requests"].get(action, 0).asInt();
  }
  // The ENI is where it was put: neither detached nor deleted, and the agent sent no Detach or
  // Delete at all.
  void expectUntouched(const NetworkInterface& eni) {
    EXPECT_EQ(proxyRequests("DetachNetworkInterface"), 0);
    EXPECT_EQ(proxyRequests("DeleteNetworkInterface"), 0);
    auto now = ec2_->describeNetworkInterfaces({eni.id}, {});
    ASSERT_TRUE(now || now.error().code == ErrorCode::NotFound) << now.error().describe();
    ASSERT_TRUE(now && now->size() == 1u) << eni.id << " was deleted";
    ASSERT_TRUE((*now)[0].attachment) << eni.id << " was detached";
    EXPECT_EQ((*now)[0].attachment->instanceId, TestStack::get().instanceId);
  }

  Result<NodeEni> getNodeEni(const std::string& name, Json::Value* raw = nullptr) {
    auto r = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::nodeEnis(), "", name, ""}, done);
    });
    if (!r) return fail(r.error());
    if (raw != nullptr) *raw = *r;
    return decodeNodeEni(*r);
  }

  // Every node's NodeENIAttachment objects of NodeENI `name`, as a person finds them
  // (kubectl get nodeeniattachments --field-selector spec.nodeENI=<name>).
  std::vector<NodeEniAttachmentObject> recordsOf(const std::string& name) {
    Result<ObjectList> r = fail(ErrorCode::Internal, "not listed");
    // 429 "storage is (re)initializing": the API server's watch cache of the CRD restarts under
    // load; a client retries it (as the agent does), within a bound.
    (void)testing::pollUntil(
        [&] {
          r = await<ObjectList>(loop_, [&](auto done) {
            ListOptions o;
            o.fieldSelector = "spec.nodeENI=" + name;
            admin_->list(ResourceKind::nodeEniAttachments(), "", o, done);
          });
          return r || r.error().code != ErrorCode::Throttled;
        },
        Duration(10000), Duration(200));
    EXPECT_TRUE(r) << r.error().describe();
    std::vector<NodeEniAttachmentObject> out;
    for (const auto& item : r ? r->items : std::vector<Json::Value>{}) {
      auto o = decodeNodeEniAttachment(item);
      EXPECT_TRUE(o);
      if (o) out.push_back(*o);
    }
    return out;
  }
  // Those objects' entries, each with its node as nodeId, and a "failed" entry with the reason of
  // an object that has one: the per-node status that status.attachments used to hold.
  std::vector<NodeEniAttachment> entriesOf(const std::string& name) {
    std::vector<NodeEniAttachment> out;
    for (const auto& o : recordsOf(name)) {
      for (auto e : o.entries) {
        e.nodeId = o.nodeName;
        out.push_back(e);
      }
      if (!o.reason.empty()) {
        NodeEniAttachment failed;
        failed.nodeId = o.nodeName;
        failed.status = "failed";
        failed.message = o.reason;
        out.push_back(failed);
      }
    }
    return out;
  }
  // The NodeENI carries no per-node entry (agents do not write status.attachments) and, once a
  // node added the finalizer, the condition that says where they are.
  void expectPointerNotEntries(const std::string& name) {
    Json::Value raw;
    auto n = getNodeEni(name, &raw);
    ASSERT_TRUE(n);
    EXPECT_TRUE(n->attachments.empty()) << toJson(raw);
    bool condition = false;
    for (const auto& c : arrayField(objectField(raw, "status"), "conditions")) {
      condition =
          condition || (stringField(c, "type") == kAttachmentsRecordedCondition &&
                        stringField(c, "message").find("nodeeniattachments") != std::string::npos);
    }
    EXPECT_TRUE(condition) << toJson(raw);
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

  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 2; }));
  ASSERT_TRUE(agent.settle());
  // One ModifyNetworkInterfaceAttribute per ENI, though later passes (status writes, the
  // finalizer) run.
  const Json::Value stats =
      *parseJson(TestStack::get().controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
  EXPECT_EQ(stats["requests"].get("ModifyNetworkInterfaceAttribute", 0).asInt(), 2);

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
    // aws-multi-eni-controller's creation tag, for the filters people built on it.
    EXPECT_EQ(tagValue(e, "kubernetes.io/cluster/managed-by"), "nodeeni-controller");
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
  // The node-state record follows the links: interface names and their state.
  ASSERT_EQ(agent.published.size(), 2u);
  std::set<std::string> names;
  std::set<std::string> macs;
  for (const auto& r : agent.published) {
    names.insert(r.interfaceName);
    macs.insert(r.mac);
    EXPECT_EQ(r.link, "Configured");
    EXPECT_EQ(r.phase, AttachmentPhase::Attached);
    EXPECT_EQ(r.mtu, 9000);
    EXPECT_EQ(r.nodeEni, "multi-subnet-eni");
  }
  EXPECT_EQ(names, (std::set<std::string>{"eth1", "eth2"}));
  EXPECT_EQ(macs, (std::set<std::string>{enis[0].macAddress, enis[1].macAddress}))
      << "the record carries each ENI's MAC, so readers find its link by MAC";

  // This node's status: one NodeENIAttachment object with both ENIs; the NodeENI holds the
  // finalizer and a pointer to the objects, no per-node entry.
  auto records = recordsOf("multi-subnet-eni");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].name, "multi-subnet-eni." + node);
  EXPECT_EQ(records[0].nodeName, node);
  EXPECT_EQ(records[0].phase(), "Attached");
  ASSERT_EQ(records[0].entries.size(), 2u);
  for (const auto& e : records[0].entries) EXPECT_EQ(e.mtu, 9000);
  auto status = getNodeEni("multi-subnet-eni");
  ASSERT_TRUE(status);
  EXPECT_EQ(records[0].nodeEniUid, status->meta.uid);
  EXPECT_NE(
      std::find(status->meta.finalizers.begin(), status->meta.finalizers.end(), kNodeEniFinalizer),
      status->meta.finalizers.end());
  expectPointerNotEntries("multi-subnet-eni");
  // Creating the object, and the link states changing after: one write (the entries record what
  // EC2 attached; the link state is the node state's).
  EXPECT_EQ(agent.manager.recordWrites(), 1u);

  // A managed link that disappears may be an ENI detached behind the agent's back: it starts a
  // pass (the drift check), which finds IMDS agreeing and changes nothing. Once, not pass after
  // pass while the link stays gone. The link comes back and is configured again.
  const auto passes = agent.manager.passes();
  const auto confirmed = agent.manager.confirmedPasses();
  ASSERT_TRUE(ns_->deleteLink("eth1"));
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.passes() > passes; }));
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(agent.manager.passes(), passes + 1);
  EXPECT_EQ(agent.manager.confirmedPasses(), confirmed + 1) << "IMDS agreed: no EC2 read";
  EXPECT_EQ(agent.manager.recordWrites(), 1u);
  ASSERT_TRUE(ns_->addVeth("eth1", enis[0].macAddress, "peer1"));
  ASSERT_TRUE(agent.runUntil([&] {
    const auto& links = agent.reconciler.links();
    return std::all_of(links.begin(), links.end(),
                       [](const auto& l) { return l.second.state == LinkState::Configured; });
  }));

  // The node stops matching: both ENIs are detached and deleted, and its object goes.
  setLabel(node, "ng", Json::Value());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().empty(); }));
  ASSERT_TRUE(agent.settle());
  EXPECT_TRUE(enisOf("multi-subnet-eni", node).empty());
  EXPECT_TRUE(recordsOf("multi-subnet-eni").empty());

  // Deleting the NodeENI: the finalizer clears and the object goes.
  auto del = testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "delete",
                                  "nodeeni", "multi-subnet-eni", "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = getNodeEni("multi-subnet-eni");
    return !r && r.error().code == ErrorCode::NotFound;
  }));
}

// The kernel shows an ENI's interface about a second after its attach, while the pass may still
// be attaching the next ENI. The proxy holds the second AttachNetworkInterface until the test has
// seen the first ENI's link configured: it comes up with its MTU while the pass has recorded
// nothing. (Before, the links were learnt from the records at the pass's end: the held attach ran
// out first, and the link came up only after the records.)
TEST_F(EniManagerTest, ALinkComesUpWhileThePassStillAttachesTheNextEni) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-mid-pass";
  const std::string name = "mid-pass-eni";
  createNode(node, {{"ng", "mid-pass"}});
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = name;
  neni["spec"]["nodeSelector"]["ng"] = "mid-pass";
  neni["spec"]["subnetIDs"][0] = stack.subnetB;
  neni["spec"]["subnetIDs"][1] = stack.subnetC;
  neni["spec"]["securityGroupIDs"][0] = stack.securityGroupId;
  neni["spec"]["deviceIndex"] = 1;
  neni["spec"]["mtu"] = 9000;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  // The first attach goes through; the second waits for /_proxy/release (8 s at most, below the
  // agent's 10 s per attempt).
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/rules",
                    R"([{"action": "AttachNetworkInterface", "fault": "delay", "count": 1},
                        {"action": "AttachNetworkInterface", "fault": "hold", "delay_ms": 8000}])");
  ManagerAgent agent(node, ns_->path());

  // Play the kernel: the first ENI attached in moto appears as a link with its MAC, down.
  std::string mac;
  ASSERT_TRUE(agent.runUntil([&] {
    for (const auto& e : enisOf(name, node)) {
      if (e.attachment) mac = lower(e.macAddress);
    }
    return !mac.empty();
  }));
  ASSERT_TRUE(ns_->addVeth("eth1", mac, "peer1"));
  auto configured = [&](const std::string& m) {
    auto it = agent.reconciler.links().find(m);
    return it != agent.reconciler.links().end() && it->second.state == LinkState::Configured;
  };
  ASSERT_TRUE(agent.runUntil([&] { return configured(mac); }));
  const std::size_t recordedThen = agent.manager.attachments().size() + agent.published.size();
  auto kernel = dumpLinks(ns_->path());
  int attachedThen = 0;
  for (const auto& e : enisOf(name, node)) attachedThen += e.attachment ? 1 : 0;
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/release");
  EXPECT_EQ(recordedThen, 0u) << "the link was configured before the pass recorded anything";
  EXPECT_EQ(attachedThen, 1) << "the second ENI's attach, held, had not reached moto";
  ASSERT_TRUE(kernel);
  int up = 0;
  for (const auto& l : *kernel) {
    if (l.name == "eth1" && l.adminUp() && l.mtu == 9000) ++up;
  }
  EXPECT_EQ(up, 1) << "UP with its MTU in the kernel, mid-pass";
  EXPECT_EQ(agent.reconciler.configureRuns(), 1u);
  EXPECT_EQ(agent.reconciler.changesSent(), 1u) << "MTU and up in one request";

  // The pass ends with both ENIs; the second link is configured as it appears.
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 2; }));
  EXPECT_EQ(agent.manager.linksWantedInPass(), 2u);
  std::string second;
  for (const auto& e : enisOf(name, node)) {
    if (lower(e.macAddress) != mac) second = lower(e.macAddress);
  }
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(ns_->addVeth("eth2", second, "peer2"));
  ASSERT_TRUE(agent.runUntil([&] { return configured(second); }));
  ASSERT_TRUE(agent.settle());

  // Clean up: the node stops matching, both ENIs go, then the NodeENI.
  setLabel(node, "ng", Json::Value());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().empty(); }));
  ASSERT_TRUE(agent.settle());
  EXPECT_TRUE(enisOf(name, node).empty());
  EXPECT_TRUE(agent.reconciler.links().empty()) << "no link left managed";
  auto del = testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "delete",
                                  "nodeeni", name, "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = getNodeEni(name);
    return !r && r.error().code == ErrorCode::NotFound;
  }));
}

// A node that died for good (its Node object is gone, its agent too) left its NodeENIAttachment
// and, from an older agent, a status entry. No garbage collector runs on the test stack, so the
// live node that takes part in the deletion prunes the dead node's object: the deletion completes.
TEST_F(EniManagerTest, ADeadNodeNeverBlocksDeletion) {
  const std::string name = "dead-node-eni";
  createUnsatisfiableNodeEni(name, "dead-node-test");
  auto created = getNodeEni(name);
  ASSERT_TRUE(created);
  Json::Value ghost;
  ghost["apiVersion"] = "networking.k8s.aws/v1alpha1";
  ghost["kind"] = "NodeENI";
  ghost["metadata"]["name"] = name;
  ghost["status"]["attachments"][0]["nodeID"] = "ghost-node";
  ghost["status"]["attachments"][0]["deviceIndex"] = 1;
  ghost["status"]["attachments"][0]["eniID"] = "eni-0ghost";
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::nodeEnis(), "", name, "status"}, PatchType::Apply, ghost,
                  PatchOptions{"eni-agent/ghost-node", true}, done);
  }));
  NodeEniAttachmentWriter dead(*admin_, clock_, "ghost-node");
  NodeEniAttachmentObject o;
  o.nodeEni = name;
  o.nodeEniUid = created->meta.uid;
  o.entries.push_back(NodeEniAttachment{"", "", "eni-0ghost", "", "", "", 1, 0, "attached", "", "",
                                        false, "", "", ""});
  ASSERT_TRUE(call([&](auto done) {
    dead.apply(o, [done](Result<void> r) {
      done(r ? Result<Json::Value>(Json::Value()) : fail(r.error()));
    });
  }));
  // The live node's own entry, as the agent before NodeENIAttachments wrote it: the upgraded agent
  // takes it out (its old field manager), and leaves the dead node's alone.
  Json::Value before = ghost;
  before["status"]["attachments"][0]["nodeID"] = "nm-alive";
  before["status"]["attachments"][0]["eniID"] = "eni-0before";
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::nodeEnis(), "", name, "status"}, PatchType::Apply, before,
                  PatchOptions{"eni-agent/nm-alive", true}, done);
  }));
  createNode("nm-alive", {{"ng", "dead-node-test"}});
  ManagerAgent agent("nm-alive", ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return recordsOf(name).size() == 2; }));
  ASSERT_TRUE(agent.runUntil([&] {
    auto n = getNodeEni(name);
    return n && n->attachments.size() == 1;
  })) << "the upgraded agent's old entry is gone";
  ASSERT_TRUE(agent.settle());
  auto legacy = getNodeEni(name);
  ASSERT_TRUE(legacy);
  ASSERT_EQ(legacy->attachments.size(), 1u);
  EXPECT_EQ(legacy->attachments[0].nodeId, "ghost-node");
  auto del = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                  TestStack::get().adminKubeconfig, "delete", "nodeeni", name,
                                  "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = getNodeEni(name);
    return !r && r.error().code == ErrorCode::NotFound;
  })) << "the dead node's object was pruned and the finalizer removed";
  EXPECT_TRUE(recordsOf(name).empty());
}

// A node whose Node object exists but whose agent is gone (label removed, crash-looping, denied by
// IAM) keeps its NodeENIAttachment, and the deletion protocol waits for it. After
// --max-cleanup-duration a live agent removes the finalizer, with a CleanupTimeout Warning event
// and a log line naming that node and the ENI it still holds; its object is left for its agent.
TEST_F(EniManagerTest, AStuckDeletionLosesItsFinalizerAfterMaxCleanupDuration) {
  const std::string name = "stuck-eni";
  createUnsatisfiableNodeEni(name, "stuck-test");
  auto created = getNodeEni(name);
  ASSERT_TRUE(created);
  createNode("nm-stuck", {{"ng", "stuck-test"}});  // no agent ever runs for it
  createNode("nm-live", {{"ng", "stuck-test"}});
  // The stuck node's agent recorded an ENI before it went, as the simulator's nodes record.
  VirtualNode stuck(*admin_, clock_, "nm-stuck", "", false);
  NodeEniAttachment held;
  held.eniId = "eni-0stuck";
  held.deviceIndex = 1;
  held.status = "attached";
  ASSERT_TRUE(call([&](auto done) {
    stuck.record(*created, {held}, [done](bool ok) {
      done(ok ? Result<Json::Value>(Json::Value()) : fail(ErrorCode::Internal, "not recorded"));
    });
  }));
  LogCapture log;
  ManagerAgent agent("nm-live", ns_->path(), std::chrono::seconds(3));
  ASSERT_TRUE(agent.runUntil([&] { return recordsOf(name).size() == 2; }));
  ASSERT_TRUE(agent.settle());
  auto del = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                  TestStack::get().adminKubeconfig, "delete", "nodeeni", name,
                                  "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = getNodeEni(name);
    return !r && r.error().code == ErrorCode::NotFound;
  })) << "the finalizer was removed once the cleanup timed out";
  ASSERT_TRUE(agent.settle());
  auto events = await<ObjectList>(loop_, [&](auto done) {
    ListOptions o;
    o.fieldSelector = "involvedObject.name=" + name + ",reason=CleanupTimeout";
    admin_->list(ResourceKind::events(), "default", o, done);
  });
  ASSERT_TRUE(events);
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(stringField(events->items[0], "type"), "Warning");
  const std::string message = stringField(events->items[0], "message");
  EXPECT_NE(message.find("within 3s"), std::string::npos) << message;
  EXPECT_NE(message.find("nm-stuck (eni-0stuck)"), std::string::npos) << message;
  EXPECT_EQ(message.find("nm-live"), std::string::npos) << "the live node finished: " << message;
  EXPECT_EQ(log.matching({"timed out", "nm-stuck", "eni-0stuck"}).size(), 1u);
  // The stuck node's object stays: its agent, when it returns, releases the ENI it names.
  auto left = recordsOf(name);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].nodeName, "nm-stuck");
}

TEST_F(EniManagerTest, AnUnknownSubnetNameIsAWarningAndAStatusEntryAndNothingElse) {
  const std::string node = "nm-invalid";
  createNode(node, {{"role", "invalid-test"}});
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "unknown-subnet-eni";
  neni["spec"]["nodeSelector"]["role"] = "invalid-test";
  neni["spec"]["subnetName"] = "no-such-subnet";
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return !entriesOf("unknown-subnet-eni").empty(); }));
  ASSERT_TRUE(agent.settle());
  auto records = recordsOf("unknown-subnet-eni");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].phase(), "Failed");
  EXPECT_TRUE(records[0].entries.empty());
  EXPECT_NE(records[0].reason.find("Name=no-such-subnet"), std::string::npos) << records[0].reason;
  auto status = getNodeEni("unknown-subnet-eni");
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->attachments.empty());
  EXPECT_TRUE(status->meta.finalizers.empty()) << "no ENI on any node: nothing to clean up";
  auto events = await<ObjectList>(loop_, [&](auto done) {
    ListOptions o;
    o.fieldSelector = "involvedObject.name=unknown-subnet-eni";
    admin_->list(ResourceKind::events(), "default", o, done);
  });
  ASSERT_TRUE(events);
  ASSERT_FALSE(events->items.empty());
  EXPECT_EQ(stringField(events->items[0], "type"), "Warning");
  EXPECT_NE(stringField(events->items[0], "message").find("no-such-subnet"), std::string::npos);
  const Json::Value stats = *parseJson(
      TestStack::get().controlHttp("GET", TestStack::get().ec2ProxyEndpoint + "/_proxy/stats"));
  EXPECT_EQ(stats["requests"].get("CreateNetworkInterface", 0).asInt(), 0);
  EXPECT_EQ(stats["requests"].get("AttachNetworkInterface", 0).asInt(), 0);
}

TEST_F(EniManagerTest, TheAwsMultiEniControllerSamplesApplyUnchanged) {
  // The four NodeENI samples of the aws-multi-eni-controller README, verbatim but for names.
  const std::string samples = R"(apiVersion: networking.k8s.aws/v1alpha1
kind: NodeENI
metadata:
  name: multus-eni-config
spec:
  nodeSelector:
    ng: multi-eni
  subnetID: subnet-0f59b4f14737be9ad  # Use your subnet ID
  securityGroupIDs:
  - sg-05da196f3314d4af8  # Use your security group ID
  deviceIndex: 2
  deleteOnTermination: true
  description: "Multus ENI for secondary network interfaces"
---
apiVersion: networking.k8s.aws/v1alpha1
kind: NodeENI
metadata:
  name: multi-subnet-eni-sample
spec:
  nodeSelector:
    ng: multi-eni
  subnetIDs:
  - subnet-0f59b4f14737be9ad  # Replace with your subnet ID
  - subnet-abcdef1234567890  # Replace with your subnet ID
  securityGroupIDs:
  - sg-05da196f3314d4af8  # Replace with your security group ID
  deviceIndex: 1  # This is the base device index, will be incremented for additional ENIs
  deleteOnTermination: true
  description: "ENI with multiple subnets"
---
apiVersion: networking.k8s.aws/v1alpha1
kind: NodeENI
metadata:
  name: multi-subnet-name-eni
spec:
  nodeSelector:
    ng: multi-eni
  subnetNames:
  - eks-private-subnet-1
  - eks-private-subnet-2
  securityGroupIDs:
  - sg-05da196f3314d4af8  # Replace with your security group ID
  deviceIndex: 2  # This is the base device index, will be incremented for additional ENIs
  deleteOnTermination: true
  description: "ENI with multiple subnet names"
---
apiVersion: networking.k8s.aws/v1alpha1
kind: NodeENI
metadata:
  name: multus-eni-subnet-name
spec:
  nodeSelector:
    ng: multi-eni
  subnetName: my-subnet-name  # Subnet with this Name tag will be used
  securityGroupIDs:
  - sg-05da196f3314d4af8  # Use your security group ID
  deviceIndex: 2
  deleteOnTermination: true
  description: "ENI using subnet name instead of ID"
)";
  const std::string path = TestStack::get().dir + "/multi-eni-samples.yaml";
  std::ofstream(path) << samples;
  auto applied = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                      TestStack::get().adminKubeconfig, "apply",
                                      "--validate=strict", "--dry-run=server", "-f", path});
  EXPECT_EQ(applied.status, 0) << applied.err;
  EXPECT_NE(applied.out.find("multus-eni-subnet-name created (server dry run)"), std::string::npos)
      << applied.out;
  // And what the CRD refuses, with the reason.
  std::ofstream(path)
      << "apiVersion: networking.k8s.aws/v1alpha1\nkind: NodeENI\nmetadata: {name: bad}\n"
         "spec: {deviceIndex: 0, mtu: 10000}\n";
  auto refused = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                      TestStack::get().adminKubeconfig, "apply", "--dry-run=server",
                                      "-f", path});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("set at least one of subnetID"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("deviceIndex"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("mtu"), std::string::npos) << refused.err;
  // A too-large MTU is refused with the reason, not only the bound.
  std::ofstream(path) << "apiVersion: networking.k8s.aws/v1alpha1\nkind: NodeENI\nmetadata: "
                         "{name: jumbo}\nspec: {subnetID: subnet-a, mtu: 9216}\n";
  auto jumbo = testing::runProcess({TestStack::get().kubectl, "--kubeconfig",
                                    TestStack::get().adminKubeconfig, "apply", "--dry-run=server",
                                    "-f", path});
  EXPECT_NE(jumbo.status, 0);
  EXPECT_NE(jumbo.err.find("spec.mtu"), std::string::npos) << jumbo.err;
  EXPECT_NE(jumbo.err.find("mtu must be 68-9001: 9001 is EC2's maximum inside a VPC"),
            std::string::npos)
      << jumbo.err;
}

// aws-multi-eni-controller's DPDK fields, every one of its spec and status-entry fields, pass
// strict field validation (what kubectl apply does by default); an unknown one is still refused.
// This version binds nothing, so the agent refuses the NodeENI with a reason of its own, and
// creates nothing.
TEST_F(EniManagerTest, ADpdkNodeEniAppliesStrictlyAndIsRefusedAsNotSupported) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-dpdk";
  createNode(node, {{"role", "dpdk-test"}});
  // Every spec field of aws-multi-eni-controller's NodeENI (JSON, which kubectl reads too).
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "dpdk-eni";
  Json::Value& spec = neni["spec"];
  spec["nodeSelector"]["role"] = "dpdk-test";
  spec["subnetID"] = stack.subnetC;
  spec["subnetIDs"] = Json::Value(Json::arrayValue);
  spec["subnetName"] = "";
  spec["subnetNames"] = Json::Value(Json::arrayValue);
  spec["securityGroupIDs"] = Json::Value(Json::arrayValue);
  spec["securityGroupNames"] = Json::Value(Json::arrayValue);
  spec["deviceIndex"] = 2;
  spec["deleteOnTermination"] = true;
  spec["description"] = "DPDK ENI";
  spec["mtu"] = 9001;
  spec["enableDPDK"] = true;
  spec["dpdkDriver"] = "vfio-pci";
  spec["dpdkResourceName"] = "intel.com/intel_sriov_netdevice";
  spec["dpdkPCIAddress"] = "0000:00:06.0";
  const std::string path = stack.dir + "/dpdk-nodeeni.json";
  std::ofstream(path) << toJson(neni);
  auto kubectl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {stack.kubectl, "--kubeconfig", stack.adminKubeconfig});
    return testing::runProcess(args);
  };
  auto dryRun = kubectl({"apply", "--validate=strict", "--dry-run=server", "-f", path});
  ASSERT_EQ(dryRun.status, 0) << dryRun.err;
  Json::Value bogusEni = neni;
  bogusEni["spec"]["dpdkBogus"] = true;
  std::ofstream(stack.dir + "/dpdk-bogus.json") << toJson(bogusEni);
  auto bogus = kubectl(
      {"apply", "--validate=strict", "--dry-run=server", "-f", stack.dir + "/dpdk-bogus.json"});
  EXPECT_NE(bogus.status, 0);
  EXPECT_NE(bogus.err.find("unknown field \"spec.dpdkBogus\""), std::string::npos) << bogus.err;

  // Created for real by a POST with ?fieldValidation=Strict, then the status entries the old
  // tool's agents wrote, by a PUT of the status subresource, also strict.
  const std::string base = "/apis/networking.k8s.aws/v1alpha1/nodeenis";
  auto created = kubectl({"create", "--raw", base + "?fieldValidation=Strict", "-f", path});
  ASSERT_EQ(created.status, 0) << created.err;
  auto object = parseJson(created.out);
  ASSERT_TRUE(object) << created.out;
  Json::Value entry;
  entry["nodeID"] = "old-node";
  entry["instanceID"] = "i-0old";
  entry["eniID"] = "eni-0old";
  entry["deviceIndex"] = 2;
  entry["status"] = "attached";
  entry["dpdkBound"] = true;
  entry["dpdkDriver"] = "vfio-pci";
  entry["dpdkResourceName"] = "intel.com/intel_sriov_netdevice";
  entry["dpdkPCIAddress"] = "0000:00:06.0";
  (*object)["status"]["attachments"][0] = entry;
  std::ofstream(stack.dir + "/dpdk-status.json") << toJson(*object);
  auto status = kubectl({"replace", "--raw", base + "/dpdk-eni/status?fieldValidation=Strict", "-f",
                         stack.dir + "/dpdk-status.json"});
  ASSERT_EQ(status.status, 0) << status.err;
  auto stored = getNodeEni("dpdk-eni");
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->spec.enableDpdk);
  EXPECT_EQ(stored->spec.dpdkPciAddress, "0000:00:06.0");
  ASSERT_EQ(stored->attachments.size(), 1u);
  EXPECT_TRUE(stored->attachments[0].dpdkBound);
  EXPECT_EQ(stored->attachments[0].dpdkResourceName, "intel.com/intel_sriov_netdevice");

  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return !recordsOf("dpdk-eni").empty(); }));
  ASSERT_TRUE(agent.settle());
  auto records = recordsOf("dpdk-eni");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].phase(), "Failed");
  EXPECT_NE(records[0].reason.find("without DPDK support"), std::string::npos) << records[0].reason;
  auto events = await<ObjectList>(loop_, [&](auto done) {
    ListOptions o;
    o.fieldSelector = "involvedObject.name=dpdk-eni";
    admin_->list(ResourceKind::events(), "default", o, done);
  });
  ASSERT_TRUE(events);
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(stringField(events->items[0], "type"), "Warning");
  EXPECT_EQ(stringField(events->items[0], "reason"), "DPDKNotSupported");
  EXPECT_NE(stringField(events->items[0], "message").find("node nm-dpdk: enableDPDK"),
            std::string::npos)
      << toJson(events->items[0]);
  EXPECT_EQ(proxyRequests("CreateNetworkInterface"), 0);
  EXPECT_EQ(proxyRequests("AttachNetworkInterface"), 0);
  EXPECT_TRUE(enisOf("dpdk-eni", node).empty());
}

// deviceIndex 9223372036854775807 with two subnets once reached EC2 as DeviceIndex=-2^63: the
// CRD refuses it at admission now, and lists longer than EC2 could use.
TEST_F(EniManagerTest, TheCrdRefusesADeviceIndexAbove127AndOverlongLists) {
  const auto& stack = TestStack::get();
  const std::string path = stack.dir + "/nodeeni-bounds.yaml";
  auto dryRun = [&](const std::string& spec) {
    std::ofstream(path) << "apiVersion: networking.k8s.aws/v1alpha1\nkind: NodeENI\n"
                           "metadata: {name: bounds}\nspec: "
                        << spec << "\n";
    return testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "apply",
                                "--dry-run=server", "-f", path});
  };
  auto huge = dryRun("{subnetIDs: [subnet-a, subnet-b], deviceIndex: 9223372036854775807}");
  EXPECT_NE(huge.status, 0) << huge.out;
  EXPECT_NE(huge.err.find("spec.deviceIndex"), std::string::npos) << huge.err;
  EXPECT_NE(huge.err.find("127"), std::string::npos) << huge.err;
  std::string groups = "[";
  for (int i = 0; i < 17; ++i) groups += (i ? ", sg-" : "sg-") + std::to_string(i);
  std::string subnets = "[";
  for (int i = 0; i < 33; ++i) subnets += (i ? ", subnet-" : "subnet-") + std::to_string(i);
  auto lists = dryRun("{subnetIDs: " + subnets + "], securityGroupIDs: " + groups + "]}");
  EXPECT_NE(lists.status, 0) << lists.out;
  EXPECT_NE(lists.err.find("spec.securityGroupIDs"), std::string::npos) << lists.err;
  EXPECT_NE(lists.err.find("spec.subnetIDs"), std::string::npos) << lists.err;
  // The edges are admitted.
  auto top = dryRun("{subnetID: subnet-a, deviceIndex: 127}");
  EXPECT_EQ(top.status, 0) << top.err;
}

TEST_F(EniManagerTest, ASecurityGroupOfAnotherVpcIsAProblemNotACreate) {
  const std::string node = "nm-othervpc";
  createNode(node, {{"role", "othervpc"}});
  auto vpc = ec2_->call("CreateVpc", {{"CidrBlock", "172.31.0.0/16"}});
  ASSERT_TRUE(vpc);
  const std::string vpcId =
      vpc->substr(vpc->find("<vpcId>") + 7, vpc->find("</vpcId>") - vpc->find("<vpcId>") - 7);
  auto group =
      ec2_->call("CreateSecurityGroup",
                 {{"GroupName", "elsewhere"}, {"GroupDescription", "x"}, {"VpcId", vpcId}});
  ASSERT_TRUE(group);
  const std::string groupId = group->substr(
      group->find("<groupId>") + 9, group->find("</groupId>") - group->find("<groupId>") - 9);
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "other-vpc-eni";
  neni["spec"]["nodeSelector"]["role"] = "othervpc";
  neni["spec"]["subnetID"] = TestStack::get().subnetB;
  neni["spec"]["securityGroupIDs"][0] = groupId;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return !entriesOf("other-vpc-eni").empty(); }));
  auto entries = entriesOf("other-vpc-eni");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].status, "failed");
  EXPECT_NE(entries[0].message.find("is in " + vpcId), std::string::npos) << entries[0].message;
  EXPECT_TRUE(enisOf("other-vpc-eni", node).empty());
}

TEST_F(EniManagerTest, AnEniMadeByAwsMultiEniControllerIsAdoptedNotDuplicated) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-legacy";
  createNode(node, {{"ng", "legacy"}});
  // What aws-multi-eni-controller left: its tags (the creation tag
  // kubernetes.io/cluster/managed-by=nodeeni-controller among them), attached to this instance,
  // no eni-agent tags.
  CreateEniRequest request;
  request.subnetId = stack.subnetC;
  request.tags = {{"Name", "nodeeni-legacy-eni-" + node},
                  {"NodeENI", "legacy-eni"},
                  {"Node", node},
                  {"SubnetID", stack.subnetC},
                  {kLegacyManagedByTag, kLegacyManagedByValue},
                  {kNoManageTag, "true"}};
  auto legacy = ec2_->createNetworkInterface(request);
  ASSERT_TRUE(legacy);
  ASSERT_TRUE(ec2_->attachNetworkInterface(legacy->id, stack.instanceId, 60));
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "legacy-eni";
  neni["spec"]["nodeSelector"]["ng"] = "legacy";
  neni["spec"]["subnetID"] = stack.subnetC;
  neni["spec"]["deviceIndex"] = 60;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 1; }));
  ASSERT_TRUE(agent.settle());
  auto enis = enisOf("legacy-eni", node);
  ASSERT_EQ(enis.size(), 1u);
  EXPECT_EQ(enis[0].id, legacy->id);
  EXPECT_EQ(tagValue(enis[0], kManagedByTag), "eni-agent")
      << "adopted: now it carries eni-agent's ownership";
  EXPECT_EQ(tagValue(enis[0], kInstanceIdTag), stack.instanceId);
  EXPECT_EQ(agent.manager.attachments()[0].deviceIndex, 60) << "kept where it was attached";
  const Json::Value stats =
      *parseJson(TestStack::get().controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
  EXPECT_EQ(stats["requests"].get("CreateNetworkInterface", 0).asInt(), 0);
  EXPECT_EQ(stats["requests"].get("AttachNetworkInterface", 0).asInt(), 0);
}

// What aws-multi-eni-controller v1.3.8 leaves for a NodeENI of `subnets` on `node`, attached to
// the stack's instance from device index `base` up (one index per subnet, as it counted them).
// Its ENIs: created with the spec's security groups and description and its six tags, attached,
// DeleteOnTermination set to DEFAULT_DELETE_ON_TERMINATION (true, its default, as the spec says
// too). Its NodeENI: applied with kubectl (the last-applied annotation), its finalizer, and one
// status.attachments entry per ENI as its reconciler wrote them (a status update of its own).
struct LegacyMultiEni {
  Json::Value nodeEni;                 // as the API server holds it once set up
  std::vector<NetworkInterface> enis;  // as EC2 shows them once set up, in subnet order
};

Json::Value legacyNodeEniSpec(const std::string& label, const std::vector<std::string>& subnets,
                              std::int64_t base) {
  Json::Value spec;
  spec["nodeSelector"]["ng"] = label;
  for (const auto& s : subnets) spec["subnetIDs"].append(s);
  spec["securityGroupIDs"].append(TestStack::get().securityGroupId);
  spec["deviceIndex"] = static_cast<Json::Int64>(base);
  spec["deleteOnTermination"] = true;
  spec["description"] = "ENI with multiple subnets";
  spec["mtu"] = 9001;
  return spec;
}

// One ENI as its createENIInSubnet and attachENI made it.
NetworkInterface legacyEni(CurlEc2Client& ec2, const std::string& nodeEni, const std::string& node,
                           const std::string& subnet, std::int64_t index) {
  const auto& stack = TestStack::get();
  CreateEniRequest request;
  request.subnetId = subnet;
  request.securityGroupIds = {stack.securityGroupId};
  request.description = "ENI with multiple subnets";
  request.tags = {
      {"Name", "nodeeni-" + nodeEni + "-" + node + "-" + subnet.substr(subnet.size() - 8)},
      {"NodeENI", nodeEni},
      {"Node", node},
      {"SubnetID", subnet},
      {kLegacyManagedByTag, kLegacyManagedByValue},
      {kNoManageTag, "true"}};
  auto eni = ec2.createNetworkInterface(request);
  EXPECT_TRUE(eni) << eni.error().describe();
  if (!eni) return {};
  auto attachment = ec2.attachNetworkInterface(eni->id, stack.instanceId, index);
  EXPECT_TRUE(attachment) << attachment.error().describe();
  if (!attachment) return {};
  EXPECT_TRUE(ec2.setDeleteOnTermination(eni->id, *attachment, true));
  auto now = ec2.describeNetworkInterfaces({eni->id}, {});
  EXPECT_TRUE(now && now->size() == 1u);
  return now && now->size() == 1u ? (*now)[0] : NetworkInterface{};
}

// Its status entry for one ENI (ENIAttachment: deviceIndex, subnetCIDR and mtu among them).
Json::Value legacyEntry(CurlEc2Client& ec2, const std::string& node, const NetworkInterface& eni) {
  Json::Value e;
  e["nodeID"] = node;
  e["instanceID"] = TestStack::get().instanceId;
  e["eniID"] = eni.id;
  e["attachmentID"] = eni.attachment ? eni.attachment->attachmentId : "";
  e["subnetID"] = eni.subnetId;
  auto subnet = ec2.describeSubnets({eni.subnetId}, {});
  EXPECT_TRUE(subnet && subnet->size() == 1u);
  if (subnet && subnet->size() == 1u) e["subnetCIDR"] = (*subnet)[0].cidrBlock;
  e["mtu"] = 9001;
  e["deviceIndex"] = static_cast<Json::Int64>(eni.attachment ? eni.attachment->deviceIndex : 0);
  e["status"] = "attached";
  e["lastUpdated"] = "2026-11-02T10:15:00Z";
  return e;
}

std::map<std::string, std::string> tagMap(const NetworkInterface& eni) {
  std::map<std::string, std::string> out;
  for (const auto& t : eni.tags) out[t.key] = t.value;
  return out;
}

class AwsMultiEniControllerMigrationTest : public EniManagerTest {
 protected:
  LegacyMultiEni setUpLegacy(const std::string& name, const std::string& node,
                             const std::string& label, const std::vector<std::string>& subnets,
                             std::int64_t base) {
    LegacyMultiEni out;
    Json::Value neni;
    neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
    neni["kind"] = "NodeENI";
    neni["metadata"]["name"] = name;
    neni["spec"] = legacyNodeEniSpec(label, subnets, base);
    neni["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        toJson(neni);
    neni["metadata"]["finalizers"].append(kNodeEniFinalizer);
    EXPECT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
    }));
    Json::Value status;
    for (std::size_t i = 0; i < subnets.size(); ++i) {
      out.enis.push_back(legacyEni(*ec2_, name, node, subnets[i], base + std::int64_t(i)));
      status["status"]["attachments"].append(legacyEntry(*ec2_, node, out.enis.back()));
    }
    // Its reconciler's status update, under its own field manager.
    auto written = call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::nodeEnis(), "", name, "status"}, PatchType::Merge,
                    status, PatchOptions{"manager"}, done);
    });
    EXPECT_TRUE(written) << written.error().describe();
    if (written) out.nodeEni = *written;
    return out;
  }
  // The NodeENI's finalizers, annotations and status.attachments: what the old tool left there.
  static Json::Value legacyPart(const Json::Value& nodeEni) {
    Json::Value part;
    part["finalizers"] = arrayField(objectField(nodeEni, "metadata"), "finalizers");
    part["annotations"] = objectField(objectField(nodeEni, "metadata"), "annotations");
    part["attachments"] = arrayField(objectField(nodeEni, "status"), "attachments");
    return part;
  }
  // What the first start did, from the proxy's count and log (`stats`), EC2 and the API server.
  void expectTakenOver(const LegacyMultiEni& legacy, const Json::Value& stats,
                       const std::string& name, const Json::Value& before) {
    const auto& stack = TestStack::get();
    const Json::Value& requests = stats["requests"];
    for (const char* action :
         {"CreateNetworkInterface", "AttachNetworkInterface", "DetachNetworkInterface",
          "DeleteNetworkInterface", "ModifyNetworkInterfaceAttribute", "DeleteTags"})
      EXPECT_EQ(requests.get(action, 0).asInt(), 0) << action << requests.toStyledString();
    EXPECT_EQ(requests.get("CreateTags", 0).asInt(), 2) << "one per ENI";
    const std::map<std::string, std::string> ownership = {
        {kManagedByTag, "eni-agent"}, {kInstanceIdTag, stack.instanceId}, {kNoManageTag, "true"}};
    std::set<std::string> tagged;
    for (const auto& entry : stats["log"]) {
      if (entry["action"].asString() != "CreateTags") continue;
      EXPECT_EQ(entry["enis"].size(), 1u) << toJson(entry);
      EXPECT_EQ(entry["tags"].get(kManagedByTag, "").asString(), "eni-agent") << toJson(entry);
      EXPECT_EQ(entry["tags"].get(kInstanceIdTag, "").asString(), stack.instanceId);
      for (const auto& id : entry["enis"]) tagged.insert(id.asString());
      for (const auto& key : entry["tags"].getMemberNames()) {
        auto it = ownership.find(key);
        EXPECT_TRUE(it != ownership.end()) << "only ownership tags are written, not " << key;
        if (it != ownership.end()) {
          EXPECT_EQ(entry["tags"][key].asString(), it->second) << key;
        }
      }
    }
    EXPECT_EQ(tagged, (std::set<std::string>{legacy.enis[0].id, legacy.enis[1].id}));
    for (const auto& old : legacy.enis) {
      auto now = ec2_->describeNetworkInterfaces({old.id}, {});
      ASSERT_TRUE(now && now->size() == 1u) << old.id << " is gone";
      const NetworkInterface& e = (*now)[0];
      ASSERT_TRUE(e.attachment) << e.id << " was detached";
      EXPECT_EQ(e.attachment->attachmentId, old.attachment->attachmentId) << "never detached";
      EXPECT_EQ(e.attachment->deviceIndex, old.attachment->deviceIndex);
      EXPECT_TRUE(e.attachment->deleteOnTermination);
      auto expected = tagMap(old);
      expected[kManagedByTag] = "eni-agent";
      expected[kInstanceIdTag] = stack.instanceId;
      EXPECT_EQ(tagMap(e), expected) << "the old tool's tags stay as they were, ownership added";
    }
    Json::Value raw;
    ASSERT_TRUE(getNodeEni(name, &raw));
    EXPECT_EQ(toJson(legacyPart(raw)), toJson(before))
        << "the old tool's finalizer, annotations and status entries are left as they were";
    ASSERT_EQ(before["finalizers"].size(), 1u);
    EXPECT_EQ(before["finalizers"][0].asString(), kNodeEniFinalizer) << "the same finalizer";
    auto entries = entriesOf(name);
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.deviceIndex < b.deviceIndex; });
    ASSERT_EQ(entries.size(), 2u);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      EXPECT_EQ(entries[i].eniId, legacy.enis[i].id);
      EXPECT_EQ(entries[i].attachmentId, legacy.enis[i].attachment->attachmentId);
      EXPECT_EQ(entries[i].deviceIndex, legacy.enis[i].attachment->deviceIndex);
      EXPECT_EQ(entries[i].status, "attached");
    }
  }
  std::optional<NodeState> nodeStateOf(const std::string& node) {
    auto n = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::nodes(), "", node, ""}, done);
    });
    if (!n) return std::nullopt;
    auto state = decodeNodeState(
        stringField(objectField(objectField(*n, "metadata"), "annotations"), kNodeStateAnnotation));
    return state ? std::optional<NodeState>(*state) : std::nullopt;
  }
};

// The migration from aws-multi-eni-controller v1.3.8 (docs/migration.md): its state for a NodeENI
// of two subnets on one node, and eni-agent started with its controller Deployment's environment
// copied unchanged, as the doc says to. eni-agent takes both ENIs over where they are: no create,
// attach, detach or delete, no DeleteOnTermination change; its only EC2 writes are its ownership
// tags, one CreateTags per ENI; every tag the old tool set keeps its value; the NodeENI keeps the
// old tool's finalizer (the same name eni-agent uses), annotations and status entries; the node's
// NodeENIAttachment records both ENIs attached. A warm restart then makes no EC2 call at all.
TEST_F(AwsMultiEniControllerMigrationTest, TheStateItLeftIsTakenOverWithoutChurn) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-amec";
  const std::string name = "amec-multi-subnet";
  createNode(node, {{"ng", "amec-multi-eni"}});
  const LegacyMultiEni legacy =
      setUpLegacy(name, node, "amec-multi-eni", {stack.subnetB, stack.subnetC}, 110);
  ASSERT_EQ(legacy.enis.size(), 2u);
  for (const auto& e : legacy.enis) {
    ASSERT_FALSE(e.id.empty());
    ASSERT_TRUE(e.attachment && e.attachment->deleteOnTermination);
  }
  const Json::Value before = legacyPart(legacy.nodeEni);
  ASSERT_EQ(before["attachments"].size(), 2u) << toJson(legacy.nodeEni);

  const std::vector<std::string> args = {
      testing::agentBinary(), "--kubeconfig=" + stack.agentKubeconfig,
      "--node-name=" + node,  "--enable-tagger=false",
      "--manage-links=false", "--log-format=json"};
  // The controller Deployment's environment, each at the value it runs with (its defaults written
  // out; AWS_REGION is agentEnv()'s): read by eni-agent as docs/migration.md says, or ignored.
  auto env = testing::agentEnv();
  for (const char* kv :
       {"COMPONENT=eni-controller", "MAX_CONCURRENT_ENI_CLEANUP=3", "MAX_CONCURRENT_RECONCILES=5",
        "DETACHMENT_TIMEOUT=15s", "RECONCILE_PERIOD=5m", "MAX_CLEANUP_DURATION=30m",
        "DEFAULT_DELETE_ON_TERMINATION=true", "DEFAULT_DEVICE_INDEX=1"})
    env.push_back(kv);
  auto stats = [&] {
    return *parseJson(stack.controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
  };
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  {
    testing::BackgroundProcess agent(args, env);
    ASSERT_TRUE(agent.waitForOutput("\"msg\":\"ready\"", 120000)) << agent.output();
    ASSERT_TRUE(testing::eventually(
        [&] {
          auto state = nodeStateOf(node);
          return state && state->attachments.size() == 2;
        },
        Duration(120000)))
        << "the node state records both attachments\n"
        << agent.output();
    ASSERT_TRUE(testing::eventually([&] {
      auto entries = entriesOf(name);
      return entries.size() == 2 && entries[0].status == "attached" &&
             entries[1].status == "attached";
    })) << agent.output();
    // Its empty apply of status.attachments leaves the old tool's entries, and says so.
    EXPECT_TRUE(agent.waitForOutput("keeps entries of this node that another tool wrote"))
        << agent.output();
    // The old tool added the finalizer, so no finalizer write of an agent brought the condition
    // that points at the NodeENIAttachments: the node with ENIs writes it, once.
    EXPECT_TRUE(testing::eventually([&] {
      auto n = getNodeEni(name);
      return n && std::count(n->conditionTypes.begin(), n->conditionTypes.end(),
                             std::string(kAttachmentsRecordedCondition)) == 1;
    })) << agent.output();
    EXPECT_EQ(agent.terminate(), 0) << agent.output();
  }
  expectTakenOver(legacy, stats(), name, before);

  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  {
    testing::BackgroundProcess warm(args, env);
    ASSERT_TRUE(warm.waitForOutput("confirmed the NodeENI attachments", 120000)) << warm.output();
    ASSERT_TRUE(warm.waitForOutput("\"msg\":\"ready\"")) << warm.output();
    EXPECT_EQ(warm.terminate(), 0);
    EXPECT_TRUE(stats()["requests"].empty())
        << "a warm restart makes no EC2 call: " << stats()["requests"].toStyledString()
        << warm.output();
  }
  for (const auto& e : legacy.enis) removeForged(e);
}

// A DescribeNetworkInterfaces answered 200 with <Foo/> is not "this node has no ENIs": read so,
// it made a pass create and attach a second ENI for a NodeENI that had one. Now the lie is a
// Transient error, the pass retries, and the ENI it has is the one it keeps.
TEST_F(EniManagerTest, ADescribeAnsweredWithFooNeverLeadsToASecondEni) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-lied-to";
  createNode(node, {{"ng", "lied-to"}});
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "lied-to-eni";
  neni["spec"]["nodeSelector"]["ng"] = "lied-to";
  neni["spec"]["subnetID"] = stack.subnetC;
  neni["spec"]["deviceIndex"] = 70;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  std::string first;
  {
    ManagerAgent agent(node, ns_->path());
    ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 1; }));
    ASSERT_TRUE(agent.settle());
    first = agent.manager.attachments()[0].eniId;
  }
  ASSERT_EQ(enisOf("lied-to-eni", node).size(), 1u);

  // A new agent's pass reads EC2; its first call's four attempts and two of the next are lies.
  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/rules",
                               R"([{"action":"DescribeNetworkInterfaces","fault":"bogus",
                                    "count":6}])");
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 1; }));
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(agent.manager.attachments()[0].eniId, first);
  const Json::Value stats =
      *parseJson(TestStack::get().controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
  EXPECT_EQ(stats["faults"].get("DescribeNetworkInterfaces", 0).asInt(), 6) << "the lies landed";
  EXPECT_EQ(stats["requests"].get("CreateNetworkInterface", 0).asInt(), 0);
  EXPECT_EQ(stats["requests"].get("AttachNetworkInterface", 0).asInt(), 0);
  auto enis = enisOf("lied-to-eni", node);
  ASSERT_EQ(enis.size(), 1u);
  EXPECT_EQ(enis[0].id, first);
  // Leave the instance as it was: unlabelled, the node's ENI goes.
  setLabel(node, "ng", Json::Value());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().empty(); }));
  ASSERT_TRUE(agent.settle());
}

TEST_F(EniManagerTest, AnEniWithoutOwnershipTagsIsNeverDetachedOrDeleted) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-foreign";
  createNode(node, {});
  // Someone else's ENI that merely carries a Node tag with this node's name.
  CreateEniRequest request;
  request.subnetId = stack.subnetC;
  request.tags = {{"Node", node}, {"Team", "someone-else"}};
  auto foreign = ec2_->createNetworkInterface(request);
  ASSERT_TRUE(foreign);
  ASSERT_TRUE(ec2_->attachNetworkInterface(foreign->id, stack.instanceId, 61));
  ManagerAgent agent(node, ns_->path());  // no NodeENI wants anything on this node
  ASSERT_TRUE(agent.settle());
  auto still = ec2_->describeNetworkInterfaces({foreign->id}, {});
  ASSERT_TRUE(still) << still.error().describe();
  ASSERT_EQ(still->size(), 1u);
  ASSERT_TRUE((*still)[0].attachment);
  EXPECT_EQ((*still)[0].attachment->instanceId, stack.instanceId);
}

// Issue 16, part 1: a VPC CNI secondary ENI holding two pod IPs, tagged (by a pod annotation, in
// the original report) as if it were eni-agent's ENI of NodeENI "ghost" on this node and
// instance. The ENI manager's EC2 passes never detach or delete it, and say why, once.
TEST_F(EniManagerTest, AnEniHoldingPodIpsIsNeverReleasedWhateverItsTags) {
  const std::string node = "nm-forged-ips";
  createNode(node, {{"forged", "ips"}});
  createNodeEni("forged-ips-eni", "ips", 80);
  LogCapture log;
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 1; }));
  ASSERT_TRUE(agent.settle());
  const NetworkInterface shared = forgedEni(node, 81, 2);
  ASSERT_FALSE(shared.id.empty());
  ASSERT_EQ(shared.privateIpAddresses.size(), 3u) << "a primary and two pod IPs";
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");

  forceEc2Pass(agent, "forged-ips-eni", "first edit");
  forceEc2Pass(agent, "forged-ips-eni", "second edit");
  expectUntouched(shared);
  const auto refusals = log.matching({shared.id, "2 secondary private IPs"});
  EXPECT_EQ(refusals.size(), 1u) << "named once, not every pass";
  ASSERT_EQ(agent.manager.attachments().size(), 1u) << "its own ENI is still there";
  EXPECT_NE(agent.manager.attachments()[0].eniId, shared.id);
  removeForged(shared);
}

// An ENI with forged ownership tags and nothing else that marks it as someone else's: not in the
// agent's records, so still not the agent's.
TEST_F(EniManagerTest, AnEniWithForgedTagsThatNoRecordNamesIsLeftAlone) {
  const std::string node = "nm-forged-tags";
  createNode(node, {{"forged", "tags"}});
  createNodeEni("forged-tags-eni", "tags", 82);
  LogCapture log;
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 1; }));
  ASSERT_TRUE(agent.settle());
  const NetworkInterface forged = forgedEni(node, 83, 0);
  ASSERT_FALSE(forged.id.empty());
  ASSERT_EQ(forged.privateIpAddresses.size(), 1u);
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");

  forceEc2Pass(agent, "forged-tags-eni", "edited");
  expectUntouched(forged);
  EXPECT_EQ(log.matching({forged.id, "not in this agent's records"}).size(), 1u);
  removeForged(forged);
}

// The drift check against the real stack, with the binary: an ENI detached behind the agent's
// back (in moto) is attached again, the same one; one deleted is created again. IMDS, whose truth
// is moto, shows each change to the periodic pass, which then reads EC2.
TEST_F(EniManagerTest, AnEniDetachedOrDeletedByHandIsAttachedOrCreatedAgain) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-drift";
  createNode(node, {{"forged", "drift"}});
  createNodeEni("drift-eni", "drift", 90);
  testing::BackgroundProcess agent(
      {testing::agentBinary(), "--kubeconfig=" + stack.agentKubeconfig, "--node-name=" + node,
       "--enable-tagger=false", "--manage-links=false", "--log-format=json",
       "--nodeeni-check-interval=2s"},
      testing::agentEnv());
  auto attachedOne = [&](NetworkInterface& out) {
    auto now = enisOf("drift-eni", node);
    if (now.size() != 1 || !now[0].attachment || now[0].attachment->instanceId != stack.instanceId)
      return false;
    out = now[0];
    return true;
  };
  NetworkInterface first;
  ASSERT_TRUE(testing::eventually([&] { return attachedOne(first); }, Duration(120000)))
      << agent.output();
  ASSERT_TRUE(testing::eventually([&] {
    auto entries = entriesOf("drift-eni");
    return entries.size() == 1 && entries[0].eniId == first.id && entries[0].status == "attached";
  })) << agent.output();
  const std::string proxy = stack.ec2ProxyEndpoint;
  stack.controlHttp("POST", proxy + "/_proxy/reset");
  auto requests = [&](const char* action) {
    return (*parseJson(stack.controlHttp("GET", proxy + "/_proxy/stats")))["requests"]
        .get(action, 0)
        .asInt();
  };

  ASSERT_TRUE(ec2_->detachNetworkInterface(first.attachment->attachmentId, true));
  NetworkInterface again;
  ASSERT_TRUE(testing::eventually(
      [&] {
        return attachedOne(again) &&
               again.attachment->attachmentId != first.attachment->attachmentId;
      },
      Duration(60000)))
      << agent.output();
  EXPECT_EQ(again.id, first.id) << "the same ENI, found by its ownership tags";
  EXPECT_EQ(requests("CreateNetworkInterface"), 0);
  EXPECT_EQ(requests("AttachNetworkInterface"), 1);

  removeForged(again);  // detached and deleted behind the agent's back
  NetworkInterface recreated;
  ASSERT_TRUE(testing::eventually(
      [&] { return attachedOne(recreated) && recreated.id != first.id; }, Duration(60000)))
      << agent.output();
  EXPECT_EQ(requests("CreateNetworkInterface"), 1);
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
  removeForged(recreated);
}

// Issue 16, part 4: node-state records forged with another instance's ID (here naming an ENI that
// carries forged tags) are ignored, with a log line; they license nothing.
TEST_F(EniManagerTest, NodeStateRecordsOfAnotherInstanceAreIgnored) {
  const std::string node = "nm-forged-state";
  const NetworkInterface forged = forgedEni(node, 84, 0);
  ASSERT_FALSE(forged.id.empty());
  NodeState state;
  state.instanceId = "i-0f0f0f0f0f0f0f0f0";
  AttachmentRecord record;
  record.nodeEni = "ghost";
  record.eniId = forged.id;
  record.attachmentId = forged.attachment ? forged.attachment->attachmentId : "";
  record.deviceIndex = forged.attachment ? forged.attachment->deviceIndex : -1;
  record.phase = AttachmentPhase::Attached;
  state.attachments = {record};
  Json::Value object;
  object["metadata"]["name"] = node;
  object["metadata"]["labels"]["forged"] = "state";
  object["metadata"]["annotations"][kNodeStateAnnotation] = *encodeNodeState(state);
  object["spec"]["providerID"] = "aws:///us-east-1a/" + TestStack::get().instanceId;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodes(), "", "", ""}, object, done);
  }));
  createNodeEni("forged-state-eni", "state", 85);
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
  LogCapture log;
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().size() == 1; }));
  ASSERT_TRUE(agent.settle());
  forceEc2Pass(agent, "forged-state-eni", "edited");
  expectUntouched(forged);
  EXPECT_FALSE(
      log.matching({"NodeENI records are not this instance's, ignoring them", state.instanceId})
          .empty());
  EXPECT_EQ(log.matching({forged.id, "the records are instance " + state.instanceId}).size(), 1u);
  removeForged(forged);
}

// Several nodes on one NodeENI: the real agent (node A, real ENI in moto) and three more nodes that
// run the agent's own bookkeeping code (VirtualNode) under the agent's ServiceAccount, plus a node
// that died (its object is there, its Node is not). Each node writes only its own
// NodeENIAttachment; none of those writes reaches an agent's NodeENI watch; agents may not watch
// the objects at all; the finalizer is added once; and the deletion completes only when the last
// live node has cleaned up, the dead node's object pruned on the way.
// What an agent's client received between two readings of CurlKubeClient::traffic(): no watch
// event on any resource, and no more bytes than a bookmark or two per watch (about 200 bytes each,
// the API server's periodic heartbeat); no list.
void expectNothingHeard(const std::map<std::string, ResourceTraffic>& before,
                        const std::map<std::string, ResourceTraffic>& after) {
  if (auto it = after.find("nodeeniattachments"); it != after.end()) {
    EXPECT_EQ(it->second.watchBytes, 0u) << "agents never watch these objects";
  }
  for (const auto& [resource, t] : after) {
    auto was = before.find(resource);
    const ResourceTraffic from = was == before.end() ? ResourceTraffic{} : was->second;
    EXPECT_EQ(t.watchEvents, from.watchEvents) << resource << ": events about other nodes";
    EXPECT_EQ(t.listBytes, from.listBytes) << resource << ": a list";
    EXPECT_LE(t.watchBytes - from.watchBytes, 512u) << resource << ": more than bookmarks";
  }
}

TEST_F(EniManagerTest, NodesRecordInTheirOwnObjectsAndTheLastOneEndsTheDeletion) {
  const auto& stack = TestStack::get();
  const std::string name = "fleet-eni";
  const std::string nodeA = "nm-fleet-a";
  createNode(nodeA, {{"fleet", "yes"}});
  const std::vector<std::string> others = {"nm-fleet-b1", "nm-fleet-b2", "nm-fleet-b3"};
  for (const auto& n : others) createNode(n, {{"fleet", "yes"}});
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = name;
  neni["spec"]["nodeSelector"]["fleet"] = "yes";
  neni["spec"]["subnetID"] = stack.subnetC;
  neni["spec"]["deviceIndex"] = 70;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  CurlKubeClient agentKube(http_, *loadKubeconfig(stack.agentKubeconfig));
  // What one more agent's NodeENI watch receives from here on: every event about this NodeENI.
  auto start = getNodeEni(name);
  ASSERT_TRUE(start);
  int events = 0;
  std::size_t bytes = 0;
  ListOptions from;
  from.resourceVersion = start->meta.resourceVersion;
  from.fieldSelector = "metadata.name=" + name;
  const WatchId watch = agentKube.watch(
      ResourceKind::nodeEnis(), "", from,
      [&](WatchEvent e) {
        if (e.type == WatchEventType::Added || e.type == WatchEventType::Modified ||
            e.type == WatchEventType::Deleted) {
          ++events;
          bytes += toJson(e.object).size();
        }
      },
      [](Result<void>) {});
  auto drain = [&] { loop_.runUntil([] { return false; }, Duration(1500)); };

  // Agents may not watch NodeENIAttachments: RBAC grants no watch.
  auto refused = await<ObjectList>(loop_, [&](auto done) {
    agentKube.watch(
        ResourceKind::nodeEniAttachments(), "", {}, [](WatchEvent) {},
        [done](Result<void> r) { done(r ? Result<ObjectList>(ObjectList{}) : fail(r.error())); });
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::Permission) << refused.error().describe();

  {
    ManagerAgent agent(nodeA, ns_->path());
    ASSERT_TRUE(agent.runUntil([&] { return recordsOf(name).size() == 1; }));
    ASSERT_TRUE(agent.settle());
    drain();
    // Node A's rollout: its object, the finalizer and the condition.
    EXPECT_EQ(agent.manager.recordWrites(), 1u);
    const int afterA = events;
    EXPECT_LE(afterA, 2) << "the finalizer and the condition, each once";
    auto withFinalizer = getNodeEni(name);
    ASSERT_TRUE(withFinalizer);
    EXPECT_EQ(std::count(withFinalizer->meta.finalizers.begin(),
                         withFinalizer->meta.finalizers.end(), kNodeEniFinalizer),
              1);
    expectPointerNotEntries(name);

    // Three more nodes record theirs, from the version they saw before the finalizer: each asks
    // for it once and is refused; none of their writes reaches the NodeENI watch, nor anything
    // else agent A's client receives (its eni_agent_kube_* counters).
    // Agent A's loop runs only when the test runs it: it takes in what the API server sent it.
    auto hear = [&agent] { agent.runUntil([] { return false; }, 1500); };
    hear();
    const auto heardBefore = agent.kube.traffic().byResource();
    std::vector<std::unique_ptr<VirtualNode>> nodes;
    for (const auto& n : others) {
      auto node = call([&](auto done) {
        admin_->get(ObjectRef{ResourceKind::nodes(), "", n, ""}, done);
      });
      ASSERT_TRUE(node);
      nodes.push_back(std::make_unique<VirtualNode>(
          agentKube, clock_, n, stringField(objectField(*node, "metadata"), "uid"), false));
      NodeEniAttachment e;
      e.eniId = "eni-0fleet" + n.substr(n.size() - 2);
      e.attachmentId = "eni-attach-0fleet";
      e.subnetId = stack.subnetC;
      e.deviceIndex = 70;
      e.status = "attached";
      bool recorded = false;
      nodes.back()->record(*start, {e}, [&](bool ok) { recorded = ok; });
      ASSERT_TRUE(loop_.runUntil([&] { return recorded; }, Duration(30000)));
      EXPECT_EQ(nodes.back()->writes(), 2u) << "its object and one (refused) finalizer try";
    }
    drain();
    EXPECT_EQ(events, afterA) << "other nodes' records never reach an agent's NodeENI watch";
    hear();
    expectNothingHeard(heardBefore, agent.kube.traffic().byResource());
    auto finalizers = getNodeEni(name)->meta.finalizers;
    EXPECT_EQ(std::count(finalizers.begin(), finalizers.end(), kNodeEniFinalizer), 1);
    EXPECT_EQ(recordsOf(name).size(), 4u);
    for (const auto& r : recordsOf(name)) {
      EXPECT_LT(r.entries.size(), 2u);
    }

    // A node that died: its object stays, its Node is gone (no garbage collector runs here).
    NodeEniAttachmentWriter ghost(*admin_, clock_, "nm-fleet-ghost");
    NodeEniAttachmentObject o;
    o.nodeEni = name;
    o.nodeEniUid = start->meta.uid;
    o.entries.push_back(NodeEniAttachment{"", "", "eni-0ghost", "", "", "", 70, 0, "attached", "",
                                          "", false, "", "", ""});
    ASSERT_TRUE(call([&](auto done) {
      ghost.apply(o, [done](Result<void> r) {
        done(r ? Result<Json::Value>(Json::Value()) : fail(r.error()));
      });
    }));

    // Delete: node A releases its ENI, deletes its object, finds the others' and waits.
    auto del = testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "delete",
                                    "nodeeni", name, "--wait=false"});
    ASSERT_EQ(del.status, 0) << del.err;
    ASSERT_TRUE(agent.runUntil([&] { return agent.manager.attachments().empty(); }));
    ASSERT_TRUE(agent.settle());
    EXPECT_TRUE(enisOf(name, nodeA).empty());
    EXPECT_EQ(recordsOf(name).size(), 4u) << "three live nodes and the dead one";
    ASSERT_TRUE(getNodeEni(name)) << "not before every node cleaned up";

    auto deleting = getNodeEni(name);
    ASSERT_TRUE(deleting);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      std::optional<bool> removed;
      nodes[i]->cleanUp(*deleting, [&](bool r) { removed = r; });
      ASSERT_TRUE(loop_.runUntil([&] { return removed.has_value(); }, Duration(30000)));
      const bool last = i + 1 == nodes.size();
      EXPECT_EQ(*removed, last) << others[i];
      if (!last) {
        ASSERT_TRUE(getNodeEni(name)) << "still waiting after " << others[i];
      }
    }
    EXPECT_TRUE(recordsOf(name).empty()) << "the dead node's object was pruned by the last node";
    auto gone = getNodeEni(name);
    EXPECT_TRUE(!gone && gone.error().code == ErrorCode::NotFound);
    // Deletion: each deletes its object; the last one also the dead node's, and the finalizer.
    EXPECT_EQ(nodes[0]->writes(), 3u);
    EXPECT_EQ(nodes[1]->writes(), 3u);
    EXPECT_EQ(nodes[2]->writes(), 5u);
  }
  agentKube.cancelWatch(watch);
  std::cout << "[ figures  ] NodeENI watch events " << events << ", bytes " << bytes << "\n";
}

// The many nodes no NodeENI selects cost nothing: no EC2 read when the agent starts (so a
// restart is free), and no pass at all when another node's agent writes its status entry (each
// such write reaches every agent in the fleet).
TEST_F(EniManagerTest, ANodeNoNodeEniSelectsMakesNoEc2CallAndIgnoresOtherNodesStatus) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-unselected";
  createNode(node, {});
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "elsewhere";
  neni["spec"]["nodeSelector"]["ng"] = "elsewhere";
  neni["spec"]["subnetID"] = stack.subnetC;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  ManagerAgent agent(node, ns_->path());
  ASSERT_TRUE(agent.settle());
  const auto passes = agent.manager.passes();
  // Another node's agent records its attachment.
  Json::Value apply;
  apply["apiVersion"] = "networking.k8s.aws/v1alpha1";
  apply["kind"] = "NodeENI";
  apply["metadata"]["name"] = "elsewhere";
  Json::Value entry;
  entry["nodeID"] = "some-other-node";
  entry["deviceIndex"] = 1;
  entry["eniID"] = "eni-0123456789abcdef0";
  entry["status"] = "attached";
  apply["status"]["attachments"][0] = entry;
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::nodeEnis(), "", "elsewhere", "status"}, PatchType::Apply,
                  apply, PatchOptions{"eni-agent/some-other-node", true}, done);
  }));
  ASSERT_TRUE(agent.settle());
  EXPECT_EQ(agent.manager.passes(), passes) << "a status-only change starts no pass";
  const Json::Value stats =
      *parseJson(TestStack::get().controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
  EXPECT_TRUE(stats["requests"].empty()) << stats["requests"].toStyledString();
  // A spec change still counts.
  Json::Value patch;
  patch["spec"]["description"] = "changed";
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::nodeEnis(), "", "elsewhere", ""}, PatchType::Merge, patch,
                  {}, done);
  }));
  ASSERT_TRUE(agent.runUntil([&] { return agent.manager.passes() > passes; }));
  ASSERT_TRUE(agent.settle());
  auto del = testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "delete",
                                  "nodeeni", "elsewhere", "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  ASSERT_TRUE(agent.runUntil([&] {
    auto r = getNodeEni("elsewhere");
    return !r && r.error().code == ErrorCode::NotFound;
  })) << "the finalizer is still kept without EC2";
}

// SIGKILL between the steps of create -> attach -> status; the next run converges to exactly one
// ENI per (NodeENI, subnet), attached, with nothing leaked. The real binary, under its own RBAC.
// Then a warm restart makes no EC2 call, and one after the ENI was detached meanwhile reads EC2
// and attaches the same ENI again.
class EniManagerCrashTest : public EniManagerTest,
                            public ::testing::WithParamInterface<const char*> {};

TEST_P(EniManagerCrashTest, KilledAtThePointConvergesToExactlyOneEni) {
  const auto& stack = TestStack::get();
  const std::string point = GetParam();
  const std::string node = "nm-crash-" + point;
  const std::string name = "crash-" + point;
  createNode(node, {{"crash", point}});
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = name;
  neni["spec"]["nodeSelector"]["crash"] = point;
  neni["spec"]["subnetID"] = stack.subnetC;
  neni["spec"]["deviceIndex"] = 40;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  const std::vector<std::string> args = {
      testing::agentBinary(), "--kubeconfig=" + stack.agentKubeconfig,
      "--node-name=" + node,  "--enable-tagger=false",
      "--manage-links=false", "--log-format=json"};
  auto env = testing::agentEnv();
  {
    auto crashing = env;
    crashing.push_back("ENI_AGENT_CRASH_POINT=" + point);
    testing::BackgroundProcess agent(args, crashing);
    // The first passes walk IMDS (the stack's shared instance collects many ENIs over a run).
    ASSERT_TRUE(agent.waitForOutput("crash point reached", 120000)) << agent.output();
    (void)testing::pollUntil([&] { return !agent.running(); }, Duration(5000), Duration(50));
    EXPECT_EQ(agent.terminate(), 128 + 9) << "killed by SIGKILL at " << point;
  }
  testing::BackgroundProcess agent(args, env);
  ASSERT_TRUE(agent.waitForOutput("\"msg\":\"ready\"")) << agent.output();
  // Its first pass reads EC2 and walks IMDS, which takes seconds on the stack's shared instance
  // late in a run: a bound of 120 s, like the crash point's.
  ASSERT_TRUE(testing::eventually(
      [&] {
        auto entries = entriesOf(name);
        return entries.size() == 1 && !entries[0].eniId.empty() && entries[0].status == "attached";
      },
      Duration(120000)))
      << agent.output();
  auto enis = enisOf(name, node);
  ASSERT_EQ(enis.size(), 1u) << "no duplicate, no leak";
  ASSERT_TRUE(enis[0].attachment);
  EXPECT_EQ(enis[0].attachment->instanceId, stack.instanceId);
  EXPECT_EQ(entriesOf(name)[0].eniId, enis[0].id);
  const std::string eniId = enis[0].id;

  // A warm restart: the node state records the attachment (and the instance's other ENIs as
  // unowned), IMDS shows it where it was, so the restart makes no EC2 call at all.
  ASSERT_TRUE(testing::eventually([&] {
    auto n = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::nodes(), "", node, ""}, done);
    });
    if (!n) return false;
    auto state = decodeNodeState(
        stringField(objectField(objectField(*n, "metadata"), "annotations"), kNodeStateAnnotation));
    return state && state->attachments.size() == 1 && state->attachments[0].eniId == eniId &&
           !state->attachments[0].specHash.empty();
  })) << "the node state records the attachment\n"
      << agent.output();
  EXPECT_EQ(agent.terminate(), 0) << agent.output();
  auto stats = [&] {
    return *parseJson(
        TestStack::get().controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats"));
  };
  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  auto recordVersion = [&] {
    auto o = call([&](auto done) {
      admin_->get(
          ObjectRef{ResourceKind::nodeEniAttachments(), "", nodeEniAttachmentName(name, node), ""},
          done);
    });
    return o ? stringField(objectField(*o, "metadata"), "resourceVersion") : std::string();
  };
  const std::string versionBefore = recordVersion();
  ASSERT_FALSE(versionBefore.empty());
  {
    testing::BackgroundProcess warm(args, env);
    ASSERT_TRUE(warm.waitForOutput("confirmed the NodeENI attachments")) << warm.output();
    ASSERT_TRUE(warm.waitForOutput("\"msg\":\"ready\"")) << warm.output();
    EXPECT_EQ(warm.terminate(), 0);
    EXPECT_TRUE(stats()["requests"].empty())
        << "a warm restart makes no EC2 call: " << stats()["requests"].toStyledString()
        << warm.output();
  }
  EXPECT_EQ(recordVersion(), versionBefore)
      << "nor an API write: its NodeENIAttachment already held what it would write";

  // The ENI detached while the agent was down: IMDS no longer shows it, so the restart reads EC2,
  // finds the same ENI by its ownership tags and attaches it again; nothing is created.
  ASSERT_TRUE(ec2_->detachNetworkInterface(enis[0].attachment->attachmentId, true));
  ASSERT_TRUE(testing::eventually(
      [&] {
        auto now = ec2_->describeNetworkInterfaces({eniId}, {});
        return now && now->size() == 1 && !(*now)[0].attachment;
      },
      Duration(10000)));
  TestStack::get().controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  testing::BackgroundProcess cold(args, env);
  ASSERT_TRUE(cold.waitForOutput("do not match IMDS, reading EC2")) << cold.output();
  ASSERT_TRUE(testing::eventually([&] {
    auto now = enisOf(name, node);
    return now.size() == 1 && now[0].id == eniId && now[0].attachment &&
           now[0].attachment->instanceId == stack.instanceId;
  })) << cold.output();
  const Json::Value fallback = stats();
  EXPECT_GE(fallback["requests"].get("DescribeInstances", 0).asInt(), 1);
  EXPECT_GE(fallback["requests"].get("DescribeNetworkInterfaces", 0).asInt(), 1);
  EXPECT_EQ(fallback["requests"].get("CreateNetworkInterface", 0).asInt(), 0);
  EXPECT_EQ(fallback["requests"].get("AttachNetworkInterface", 0).asInt(), 1);
}

// The subnet of the stack's VPC tagged Name=`name`, created with `cidr` when there is none yet
// (the stack has three; a NodeENI with eight subnets needs five more).
std::string ensureSubnet(CurlEc2Client& ec2, const std::string& name, const std::string& cidr) {
  const auto& stack = TestStack::get();
  auto found = ec2.describeSubnets({}, {{"tag:Name", {name}}, {"vpc-id", {stack.vpcId}}});
  EXPECT_TRUE(found) << found.error().describe();
  if (found && !found->empty()) return (*found)[0].id;
  auto created =
      ec2.call("CreateSubnet",
               {{"VpcId", stack.vpcId}, {"CidrBlock", cidr}, {"AvailabilityZone", "us-east-1a"}});
  EXPECT_TRUE(created) << created.error().describe();
  const std::string xml = created.value_or("");
  const auto at = xml.find("<subnetId>");
  if (at == std::string::npos) return "";
  const std::string id = xml.substr(at + 10, xml.find("</subnetId>", at) - at - 10);
  EXPECT_TRUE(ec2.createTags({id}, {{"Name", name}}));
  return id;
}

// Deleting a NodeENI with eight ENIs while pods are annotated, with the real binary (tagger and
// ENI manager in one process, one EC2 client). The fault proxy makes each detach take 1.5 s, as
// EC2's does (moto's is instant). At the EC2 endpoint, in arrival order: the ENIs are released
// concurrently (more than one, never more than three, between their detach and their delete),
// and a pod annotated after the first detach is tagged before the last ENI is deleted: waiting
// for detaches does not hold up tagging.
TEST_F(EniManagerTest, DeletingEightEnisReleasesThreeAtOnceWhileTaggingGoesOn) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-delete-8";
  const std::string ns = "nm-delete-8";
  createNode(node, {{"delete8", "yes"}});
  std::vector<std::string> subnets = {stack.subnetA, stack.subnetB, stack.subnetC};
  for (int i = 1; i <= 5; ++i) {
    subnets.push_back(ensureSubnet(*ec2_, "eni-agent-test-delete8-" + std::to_string(i),
                                   "10.0." + std::to_string(16 * i) + ".0/20"));
    ASSERT_FALSE(subnets.back().empty());
  }
  // The pods' ENI: attached here with two secondary IPs, one per pod.
  CreateEniRequest podRequest;
  podRequest.subnetId = stack.subnetC;
  auto podEni = ec2_->createNetworkInterface(podRequest);
  ASSERT_TRUE(podEni) << podEni.error().describe();
  auto instance = ec2_->describeInstance(stack.instanceId);
  ASSERT_TRUE(instance);
  std::set<std::int64_t> used;
  for (const auto& n : instance->networkInterfaces) {
    if (n.attachment) used.insert(n.attachment->deviceIndex);
  }
  ASSERT_TRUE(
      ec2_->attachNetworkInterface(podEni->id, stack.instanceId, freeDeviceIndex(60, used)));
  ASSERT_TRUE(ec2_->call("AssignPrivateIpAddresses", {{"NetworkInterfaceId", podEni->id},
                                                      {"SecondaryPrivateIpAddressCount", "2"}}));
  auto podView = ec2_->describeNetworkInterfaces({podEni->id}, {});
  ASSERT_TRUE(podView && podView->size() == 1u);
  std::vector<std::string> podIps;
  for (const auto& ip : (*podView)[0].privateIpAddresses) {
    if (ip != podEni->privateIpAddress) podIps.push_back(ip);
  }
  ASSERT_EQ(podIps.size(), 2u);
  Json::Value nsObject;
  nsObject["metadata"]["name"] = ns;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{{"/api/v1", "namespaces", false}, "", "", ""}, nsObject, done);
  }));
  auto createPod = [&](const std::string& name, const std::string& ip, const std::string& tags) {
    Json::Value pod;
    pod["metadata"]["name"] = name;
    if (!tags.empty()) pod["metadata"]["annotations"]["eni-tagger.io/tags"] = tags;
    pod["spec"]["nodeName"] = node;
    pod["spec"]["containers"][0]["name"] = "c";
    pod["spec"]["containers"][0]["image"] = "registry.invalid/none";
    ASSERT_TRUE(call([&](auto done) {
      admin_->create(ObjectRef{ResourceKind::pods(), ns, "", ""}, pod, done);
    }));
    Json::Value status;  // the kubelet's part
    status["status"]["phase"] = "Running";
    status["status"]["podIP"] = ip;
    status["status"]["podIPs"][0]["ip"] = ip;
    ASSERT_TRUE(call([&](auto done) {
      admin_->patch(ObjectRef{ResourceKind::pods(), ns, name, "status"}, PatchType::Merge, status,
                    {}, done);
    }));
  };
  auto synced = [&](const std::string& name) {
    auto pod = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::pods(), ns, name, ""}, done);
    });
    if (!pod) return false;
    for (const auto& c : arrayField(objectField(*pod, "status"), "conditions")) {
      if (stringField(c, "type") == "eni-tagger.io/tagged" && stringField(c, "reason") == "Synced")
        return true;
    }
    return false;
  };
  createPod("before", podIps[0], R"({"Team":"Platform"})");
  createPod("after", podIps[1], "");

  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = "delete-8";
  neni["spec"]["nodeSelector"]["delete8"] = "yes";
  for (const auto& s : subnets) neni["spec"]["subnetIDs"].append(s);
  neni["spec"]["deviceIndex"] = 100;
  ASSERT_TRUE(call([&](auto done) {
    admin_->create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  }));
  testing::BackgroundProcess agent(
      // The pods share the instance's ENI with the stack's other pods: tagged under merge.
      {testing::agentBinary(), "--kubeconfig=" + stack.agentKubeconfig, "--node-name=" + node,
       "--manage-links=false", "--log-format=json", "--shared-eni-tagging=merge"},
      testing::agentEnv());
  std::set<std::string> enis;
  auto ready = [&] {
    Json::Value raw;
    (void)getNodeEni("delete-8", &raw);
    enis.clear();
    for (const auto& a : entriesOf("delete-8")) {
      if (a.status == "attached" && a.nodeId == node) enis.insert(a.eniId);
    }
    // The finalizer too: deleted without it, the NodeENI would be gone before any release.
    bool finalizer = false;
    for (const auto& f : arrayField(objectField(raw, "metadata"), "finalizers")) {
      finalizer = finalizer || f.asString() == kNodeEniFinalizer;
    }
    return enis.size() == 8 && finalizer && synced("before");
  };
  ASSERT_TRUE(testing::eventually(ready, Duration(60000))) << agent.output().substr(0, 20000);

  const std::string proxy = stack.ec2ProxyEndpoint;
  stack.controlHttp("POST", proxy + "/_proxy/reset");
  stack.controlHttp("POST", proxy + "/_proxy/detaching", R"({"ms": 1500})");
  auto del = testing::runProcess({stack.kubectl, "--kubeconfig", stack.adminKubeconfig, "delete",
                                  "nodeeni", "delete-8", "--wait=false"});
  ASSERT_EQ(del.status, 0) << del.err;
  auto log = [&] { return (*parseJson(stack.controlHttp("GET", proxy + "/_proxy/stats")))["log"]; };
  auto names = [](const Json::Value& entry, const std::set<std::string>& of) {
    for (const auto& e : entry["enis"]) {
      if (of.count(e.asString()) != 0) return true;
    }
    return false;
  };
  auto detaching = [&] {
    for (const auto& e : log()) {
      if (e["action"].asString() == "DetachNetworkInterface" && names(e, enis)) return true;
    }
    return false;
  };
  ASSERT_TRUE(testing::eventually(detaching, Duration(12000), Duration(20)))
      << agent.output().substr(0, 20000);
  // The deletion has begun at EC2: now a pod is annotated.
  Json::Value patch;
  patch["metadata"]["annotations"]["eni-tagger.io/tags"] = R"({"Team":"Platform","Shift":"late"})";
  ASSERT_TRUE(call([&](auto done) {
    admin_->patch(ObjectRef{ResourceKind::pods(), ns, "after", ""}, PatchType::Merge, patch, {},
                  done);
  }));
  auto left = [&] {
    std::size_t n = 0;
    for (const auto& id : enis) {
      auto now = ec2_->describeNetworkInterfaces({}, {{"network-interface-id", {id}}});
      n += !now || !now->empty() ? 1 : 0;
    }
    return n;
  };
  auto gone = [&] {
    auto r = getNodeEni("delete-8");
    return !r && r.error().code == ErrorCode::NotFound && synced("after") && left() == 0;
  };
  ASSERT_TRUE(testing::eventually(gone, Duration(60000))) << left() << " ENIs left\n"
                                                          << agent.output().substr(0, 20000);

  // In arrival order: ENIs between their detach and their delete, at each point; and where the
  // pod's tags went out.
  std::set<std::string> releasing;
  std::size_t most = 0;
  int firstDetach = -1, podTagged = -1, lastDelete = -1, deletes = 0;
  const Json::Value entries = log();
  for (Json::ArrayIndex i = 0; i < entries.size(); ++i) {
    const Json::Value& e = entries[i];
    const std::string action = e["action"].asString();
    if (!names(e, enis) && !(action == "CreateTags" && names(e, {podEni->id}))) continue;
    if (action == "DetachNetworkInterface") {
      if (firstDetach < 0) firstDetach = static_cast<int>(i);
      releasing.insert(e["enis"][0].asString());
      most = std::max(most, releasing.size());
    } else if (action == "DeleteNetworkInterface") {
      releasing.erase(e["enis"][0].asString());
      lastDelete = static_cast<int>(i);
      ++deletes;
    } else if (action == "CreateTags" && firstDetach >= 0 && podTagged < 0) {
      podTagged = static_cast<int>(i);
    }
  }
  EXPECT_EQ(deletes, 8);
  EXPECT_GT(most, 1u) << "released concurrently";
  EXPECT_LE(most, 3u) << "at most three at once";
  ASSERT_GE(podTagged, 0) << "the pod annotated during the cleanup was tagged";
  EXPECT_GT(podTagged, firstDetach);
  EXPECT_LT(podTagged, lastDelete) << "tagged before the last ENI was deleted";
  EXPECT_EQ(agent.terminate(), 0) << agent.output().substr(0, 20000);
  stack.controlHttp("POST", proxy + "/_proxy/reset");
  auto podNow = ec2_->describeNetworkInterfaces({podEni->id}, {});
  if (podNow && podNow->size() == 1u && (*podNow)[0].attachment) {
    EXPECT_TRUE(ec2_->detachNetworkInterface((*podNow)[0].attachment->attachmentId, true));
  }
  EXPECT_TRUE(ec2_->deleteNetworkInterface(podEni->id));
}

std::string pointName(const ::testing::TestParamInfo<const char*>& param) {
  std::string name = param.param;
  name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
  return name;
}

INSTANTIATE_TEST_SUITE_P(Points, EniManagerCrashTest,
                         ::testing::Values("created", "attached", "before-status"), pointName);

}  // namespace
}  // namespace eni

namespace eni {
namespace {

// Issue 13, DPDK. The PCI side is a sysfs tree answered by tests/env/sysfs_emulator.py as the
// kernel would (never a real device: this machine has none to spare); the link side is a real veth
// in the test's namespace, which the emulator deletes when the device leaves ena. The agent is the
// binary, with the flags an operator sets.
class DpdkTest : public EniManagerTest {
 protected:
  static constexpr const char* kPci = "0000:00:06.0";
  void startEmulator(std::vector<std::string> drivers) {
    testing::SysfsEmulatorOptions o;
    o.drivers = std::move(drivers);
    o.devices = {{kPci, "eth1", ""}};
    o.netnsPath = ns_->path();
    auto started = testing::SysfsEmulator::start(o);
    ASSERT_TRUE(started) << started.error().message;
    sysfs_ = std::move(*started);
  }
  std::unique_ptr<testing::BackgroundProcess> startAgent(const std::string& node) {
    const auto& stack = TestStack::get();
    return std::make_unique<testing::BackgroundProcess>(
        std::vector<std::string>{
            testing::agentBinary(), "--kubeconfig=" + stack.agentKubeconfig, "--node-name=" + node,
            "--enable-tagger=false", "--link-netns=" + ns_->path(),
            "--dpdk-sysfs-root=" + sysfs_->root(), "--sriov-config-path=" + sriovPath(node),
            "--log-format=json", "--nodeeni-check-interval=2s"},
        testing::agentEnv());
  }
  static std::string sriovPath(const std::string& node) {
    return TestStack::get().dir + "/pcidp-" + node + ".json";
  }
  std::string driverOf() const {
    return FileSysfs(sysfs_->root())
        .linkName(std::string("bus/pci/devices/") + kPci + "/driver")
        .value_or("");
  }
  int requests(const char* action) const {
    const auto& stack = TestStack::get();
    return (*parseJson(
        stack.controlHttp("GET", stack.ec2ProxyEndpoint + "/_proxy/stats")))["requests"]
        .get(action, 0)
        .asInt();
  }
  // The sysfs writes the emulator answered, from the `from`th operation on ("link-del" and
  // "link-add" are its own: the interface leaving and coming back with the device).
  std::vector<std::string> opsOf(std::size_t from = 0, bool links = false) const {
    std::vector<std::string> out;
    auto all = sysfs_->operations();
    for (std::size_t i = from; i < all.size(); ++i) {
      if (all[i].op.starts_with("link-") != links) continue;
      out.push_back(all[i].op + " " + (links ? all[i].ifname : all[i].driver));
    }
    return out;
  }
  void deleteNodeEni(const std::string& name) {
    ASSERT_TRUE(call([&](auto done) {
      admin_->remove(ObjectRef{ResourceKind::nodeEnis(), "", name, ""}, done);
    }));
  }
  std::unique_ptr<testing::SysfsEmulator> sysfs_;
};

TEST_F(DpdkTest, TheDeviceIsBoundOnceItsLinkAppearsAndGivenBackBeforeItsRelease) {
  const auto& stack = TestStack::get();
  const std::string node = "nm-dpdk-bind";
  createNode(node, {{"forged", "dpdk-bind"}});
  startEmulator({"ena", "vfio-pci"});
  // Another resource in the device plugin's config, which must survive every write.
  std::ofstream(sriovPath(node))
      << R"({"resourceList":[{"resourceName":"others","selectors":{"pciAddresses":["0000:00:09.0"]}}]})";
  Json::Value dpdk;
  dpdk["enableDPDK"] = true;
  dpdk["dpdkResourceName"] = "intel.com/intel_sriov_dpdk";
  createNodeEni("dpdk-bind", "dpdk-bind", 91, dpdk);
  stack.controlHttp("POST", stack.ec2ProxyEndpoint + "/_proxy/reset");
  auto agent = startAgent(node);
  std::vector<NetworkInterface> enis;
  ASSERT_TRUE(testing::eventually(
      [&] {
        enis = enisOf("dpdk-bind", node);
        return enis.size() == 1 && enis[0].attachment;
      },
      Duration(120000)))
      << agent->output();
  EXPECT_TRUE(sysfs_->operations().empty()) << "nothing is bound before its interface is known";
  // The kernel shows the ENI's interface: the agent finds its device and binds it.
  ASSERT_TRUE(ns_->addVeth("eth1", enis[0].macAddress, "peer1"));
  std::vector<NodeEniAttachment> entries;
  ASSERT_TRUE(testing::eventually(
      [&] {
        entries = entriesOf("dpdk-bind");
        return entries.size() == 1 && entries[0].dpdkBound;
      },
      Duration(60000)))
      << agent->output() << sysfs_->output();
  EXPECT_EQ(entries[0].eniId, enis[0].id);
  EXPECT_EQ(entries[0].status, "attached");
  EXPECT_EQ(entries[0].dpdkDriver, "vfio-pci");
  EXPECT_EQ(entries[0].dpdkPciAddress, kPci);
  EXPECT_EQ(entries[0].dpdkResourceName, "intel.com/intel_sriov_dpdk");
  EXPECT_EQ(driverOf(), "vfio-pci");
  const auto bound = opsOf();
  ASSERT_GE(bound.size(), 3u) << sysfs_->output();
  EXPECT_EQ(std::vector<std::string>(bound.begin(), bound.begin() + 3),
            (std::vector<std::string>{"override vfio-pci", "unbind ena", "probe vfio-pci"}))
      << sysfs_->output();
  // The interface left with ena: a real veth deleted in the agent's namespace, not drift.
  EXPECT_EQ(opsOf(0, true), (std::vector<std::string>{"link-del eth1"})) << sysfs_->output();
  auto config = parseJson(readFile(sriovPath(node)).value_or(""));
  ASSERT_TRUE(config);
  ASSERT_EQ((*config)["resourceList"].size(), 2u) << toJson(*config);
  EXPECT_EQ((*config)["resourceList"][0]["resourceName"].asString(), "others");
  EXPECT_EQ((*config)["resourceList"][1]["resourcePrefix"].asString(), "intel.com");
  EXPECT_EQ((*config)["resourceList"][1]["selectors"]["pciAddresses"][0].asString(), kPci);
  // The binding is in the node state, with the driver a release gives the device back to.
  ASSERT_TRUE(testing::eventually([&] {
    auto n = call([&](auto done) {
      admin_->get(ObjectRef{ResourceKind::nodes(), "", node, ""}, done);
    });
    if (!n) return false;
    auto state =
        decodeNodeState((*n)["metadata"]["annotations"].get(kNodeStateAnnotation, "").asString());
    return state && state->attachments.size() == 1 && state->attachments[0].dpdk &&
           state->attachments[0].dpdk->pciAddress == kPci &&
           state->attachments[0].dpdk->originalDriver == "ena";
  })) << agent->output();

  // ena unloaded: the device cannot go back, so the ENI is not detached from under it.
  ASSERT_TRUE(sysfs_->unloadDriver("ena"));
  deleteNodeEni("dpdk-bind");
  ASSERT_TRUE(testing::eventually(
      [&] {
        return agent->output().find("cannot give the device of " + enis[0].id) != std::string::npos;
      },
      Duration(60000)))
      << agent->output();
  EXPECT_EQ(requests("DetachNetworkInterface"), 0);
  EXPECT_EQ(driverOf(), "vfio-pci");
  // ena back: the device is given back, then the ENI released.
  const std::size_t before = sysfs_->operations().size();
  ASSERT_TRUE(sysfs_->loadDriver("ena"));
  ASSERT_TRUE(
      testing::eventually([&] { return enisOf("dpdk-bind", node).empty(); }, Duration(120000)))
      << agent->output();
  EXPECT_EQ(driverOf(), "ena");
  const auto back = opsOf(before);
  EXPECT_NE(std::find(back.begin(), back.end(), "bind ena"), back.end()) << sysfs_->output();
  EXPECT_EQ(requests("DetachNetworkInterface"), 1);
  config = parseJson(readFile(sriovPath(node)).value_or(""));
  ASSERT_TRUE(config);
  ASSERT_EQ((*config)["resourceList"].size(), 1u) << toJson(*config);
  EXPECT_EQ((*config)["resourceList"][0]["resourceName"].asString(), "others");
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

// A node without the driver: a failed entry and a Warning event that say what to load, the ENI
// attached and nothing written to sysfs; no retry loop, and the drift check tries it again.
TEST_F(DpdkTest, ADriverThatIsNotLoadedIsAFailedEntryUntilItIs) {
  const std::string node = "nm-dpdk-nodriver";
  createNode(node, {{"forged", "dpdk-nodriver"}});
  startEmulator({"ena"});
  Json::Value dpdk;
  dpdk["enableDPDK"] = true;
  dpdk["dpdkPCIAddress"] = kPci;  // no interface needed
  createNodeEni("dpdk-nodriver", "dpdk-nodriver", 92, dpdk);
  auto agent = startAgent(node);
  std::vector<NodeEniAttachment> entries;
  ASSERT_TRUE(testing::eventually(
      [&] {
        entries = entriesOf("dpdk-nodriver");
        return entries.size() == 2 && entries[1].status == "failed";
      },
      Duration(120000)))
      << agent->output();
  EXPECT_EQ(entries[0].status, "attached");
  EXPECT_FALSE(entries[0].dpdkBound);
  EXPECT_NE(entries[1].message.find("vfio-pci is not loaded"), std::string::npos)
      << entries[1].message;
  EXPECT_NE(entries[1].message.find("modprobe vfio-pci"), std::string::npos) << entries[1].message;
  EXPECT_TRUE(sysfs_->operations().empty()) << sysfs_->output();
  auto events = await<ObjectList>(loop_, [&](auto done) {
    ListOptions o;
    o.fieldSelector = "involvedObject.name=dpdk-nodriver,reason=DPDKBindFailed";
    admin_->list(ResourceKind::events(), "default", o, done);
  });
  ASSERT_TRUE(events);
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(stringField(events->items[0], "type"), "Warning");
  // Loaded: the next drift check binds it.
  ASSERT_TRUE(sysfs_->loadDriver("vfio-pci"));
  ASSERT_TRUE(testing::eventually(
      [&] {
        entries = entriesOf("dpdk-nodriver");
        return entries.size() == 1 && entries[0].dpdkBound;
      },
      Duration(60000)))
      << agent->output();
  EXPECT_EQ(driverOf(), "vfio-pci");
  deleteNodeEni("dpdk-nodriver");
  ASSERT_TRUE(
      testing::eventually([&] { return enisOf("dpdk-nodriver", node).empty(); }, Duration(120000)))
      << agent->output();
  EXPECT_EQ(driverOf(), "ena");
  EXPECT_EQ(agent->terminate(), 0) << agent->output();
}

}  // namespace
}  // namespace eni
