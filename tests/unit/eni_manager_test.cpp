// The ENI manager with in-process fakes (FakeEc2, and FakeImds whose truth is that FakeEc2): what a
// pass costs in EC2 calls. A warm restart whose node-state records IMDS confirms reads nothing;
// any disagreement falls back to the EC2 reads, which then converge without a duplicate and
// without touching an ENI the agent does not own.
#include "agent/enimanager/eni_manager.h"

#include <gtest/gtest.h>
#include <net/if.h>

#include <algorithm>
#include <memory>

#include "agent/base/executor.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/eni/link_reconciler.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "tests/support/fake_ec2.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/fake_link_manager.h"
#include "tests/support/fake_state_store.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

class NoSleeper final : public Sleeper {
 public:
  void sleepFor(Duration) override {}
};

constexpr const char* kNode = "n1";

Json::Value nodeObject(const std::string& stateAnnotation) {
  Json::Value node;
  node["metadata"]["name"] = kNode;
  node["metadata"]["resourceVersion"] = "1";
  node["metadata"]["labels"]["ng"] = "multi-eni";
  if (!stateAnnotation.empty())
    node["metadata"]["annotations"][kNodeStateAnnotation] = stateAnnotation;
  return node;
}

Json::Value nodeEniObject(std::int64_t mtu = 9001) {
  Json::Value n;
  n["apiVersion"] = "networking.k8s.aws/v1alpha1";
  n["kind"] = "NodeENI";
  n["metadata"]["name"] = "storage";
  n["metadata"]["resourceVersion"] = "10";
  n["spec"]["nodeSelector"]["ng"] = "multi-eni";
  n["spec"]["subnetID"] = "subnet-b";
  n["spec"]["deviceIndex"] = 1;
  n["spec"]["deleteOnTermination"] = true;
  n["spec"]["mtu"] = static_cast<Json::Int64>(mtu);
  return n;
}

// One agent process: a manager fed a Node and NodeENIs, started, and run until it is idle. Its
// node state is a FakeStateStore loaded from the Node's annotation.
struct Agent;
// The NodeENIAttachment objects on the "API server" of the Agents that share one FakeEc2: the
// latest Agent whose run ended, so that a restart reads what the run before it wrote.
std::map<const testing::FakeEc2*, const Agent*>& lastRun() {
  static std::map<const testing::FakeEc2*, const Agent*> runs;
  return runs;
}

struct Agent {
  explicit Agent(testing::FakeEc2& ec2)
      : imds(ec2), lifecycle(ec2, executor, sleeper, EniLifecycleOptions{}), ec2_(ec2) {
    kube.patchAnswer = [this](const ObjectRef& ref,
                              const Json::Value& body) -> Result<Json::Value> {
      if (ref.kind.plural == "nodeeniattachments") records[ref.name] = body;
      return body;
    };
    kube.onRemove = [this](const ObjectRef& ref) {
      if (ref.kind.plural == "nodeeniattachments") records.erase(ref.name);
    };
  }
  ~Agent() {
    auto it = lastRun().find(&ec2_);
    if (it != lastRun().end() && it->second == this) lastRun().erase(it);
  }
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;
  // Answers the manager's list of its NodeENIAttachments with `records`.
  void answerLists() {
    while (!kube.lists.empty()) {
      ObjectList list;
      if (kube.lists.front().kind.plural == "nodeeniattachments") {
        for (const auto& [name, object] : records) list.items.push_back(object);
      }
      kube.answerList(list);
    }
  }

  // The manager, with the store loaded from `node`'s annotation, not yet fed or started.
  void make(const Json::Value& node, EniManagerOptions options = {}) {
    store = testing::FakeStateStore::fromAnnotation(
        node["metadata"]["annotations"].get(kNodeStateAnnotation, "").asString());
    store.onSave = [this](const NodeState& s) {
      published = s.attachments;
      publishedUnowned = s.unownedEnis;
      publishedCreating = s.creating;
    };
    store.onWriteAhead = [this](const NodeState& s) {
      recorded.push_back(s.creating);
      publishedCreating = s.creating;
    };
    if (!storeWriteAhead) store.storeWriteAhead = false;
    published = store.current().attachments;
    publishedUnowned = store.current().unownedEnis;
    publishedCreating = store.current().creating;
    if (auto before = lastRun().find(&ec2_); before != lastRun().end() && before->second != this)
      records = before->second->records;
    options.nodeName = kNode;
    options.writeAhead = writeAhead;
    manager = std::make_unique<EniManager>(kube, ec2_, imds, scheduler, scheduler, executor,
                                           lifecycle, store, links, options);
  }
  void run(const Json::Value& node, const std::vector<Json::Value>& nodeEnis) {
    make(node);
    manager->onNode(ChangeType::Added, node);
    for (const auto& n : nodeEnis) manager->onNodeEni(ChangeType::Added, n);
    manager->start();
    answerLists();
    for (int i = 0; i < 20 && !(manager->passes() > 0 && manager->idle()); ++i) {
      scheduler.advance(Duration(1000));
      answerLists();
    }
    scheduler.advance(Duration(10000));  // anything a pass's own writes would start
    answerLists();
    lastRun()[&ec2_] = this;
  }
  // The node-state annotation this run leaves (the tagger records what the manager publishes).
  std::string state() const {
    NodeState s;
    s.instanceId = ec2_.instanceId;
    s.attachments = published;
    s.unownedEnis = publishedUnowned;
    s.creating = publishedCreating;
    return *encodeNodeState(s);
  }
  // The NodeENI as the API server shows it after this run: its status entries and finalizer.
  Json::Value nodeEniAfter(Json::Value object) const {
    for (auto it = kube.patches.rbegin(); it != kube.patches.rend(); ++it) {
      if (it->first.subresource == "status") {
        object["status"] = it->second["status"];
        break;
      }
    }
    object["metadata"]["finalizers"][0] = kNodeEniFinalizer;
    return object;
  }

  testing::FakeKubeApi kube;
  std::map<std::string, Json::Value> records;  // NodeENIAttachment name -> as last applied
  testing::ManualScheduler scheduler;
  InlineExecutor executor;
  NoSleeper sleeper;
  testing::FakeImds imds;
  EniLifecycle lifecycle;
  testing::FakeStateStore store;
  std::unique_ptr<EniManager> manager;
  std::vector<AttachmentRecord> published;
  std::vector<std::string> publishedUnowned;
  std::vector<std::string> publishedCreating;
  LinkReconciler* links = nullptr;  // given to the manager by make()
  bool writeAhead = false;  // creates wait for the store's write-ahead, answered storeWriteAhead
  bool storeWriteAhead = true;
  std::vector<std::vector<std::string>> recorded;  // what each write-ahead asked to record

 private:
  testing::FakeEc2& ec2_;
};

class EniManagerRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    ec2_.addAttached("eni-primary", 0);
    ec2_.addAttached("eni-cni", 1);  // VPC CNI's: not the agent's, and never touched
    first_.run(nodeObject(""), {nodeEniObject()});
    ASSERT_EQ(first_.published.size(), 1u);
    eni_ = first_.published[0].eniId;
    ec2_.calls.clear();
  }

  testing::FakeEc2 ec2_;
  Agent first_{ec2_};
  std::string eni_;
};

// The drift check: with no event, a pass runs every checkInterval. While IMDS shows the recorded
// ENI it reads nothing from EC2; an ENI detached by hand is attached again (the same one), and one
// deleted by hand is created again.
TEST_F(EniManagerRestart, ThePeriodicCheckReadsOnlyImdsAndRepairsWhatWasDetachedOrDeleted) {
  Agent& agent = first_;
  auto tick = [&](Duration d) {
    for (int i = 0; i < 10; ++i) {
      agent.scheduler.advance(Duration(d.count() / 10));
      agent.answerLists();
    }
  };
  const auto before = agent.manager->passes();
  tick(Duration(450000));  // the first check falls within 0.5-1.5x the 5 min interval
  EXPECT_GT(agent.manager->passes(), before);
  EXPECT_EQ(ec2_.reads() + ec2_.writes(), 0) << "IMDS agreed: no EC2 call";

  ec2_.enis.at(eni_).attachment.reset();  // detached behind the agent's back
  ec2_.enis.at(eni_).status = "available";
  std::vector<std::string> calls;
  agent.imds.onWalk = [&] { calls.push_back("imds"); };
  ec2_.onCall = [&](const std::string& action) { calls.push_back(action); };
  tick(Duration(360000));  // the next within 0.8-1.2x
  ASSERT_FALSE(calls.empty());
  const auto firstEc2 =
      std::find_if(calls.begin(), calls.end(), [](const std::string& c) { return c != "imds"; });
  EXPECT_EQ(std::count(calls.begin(), firstEc2, "imds"), 1)
      << "one IMDS walk tells the drift, and the EC2 pass uses it";
  agent.imds.onWalk = nullptr;
  ec2_.onCall = nullptr;
  EXPECT_EQ(ec2_.calls["AttachNetworkInterface"], 1);
  EXPECT_EQ(ec2_.calls["CreateNetworkInterface"], 0) << "the same ENI, found by its tags";
  ASSERT_TRUE(ec2_.enis.at(eni_).attachment);

  ec2_.enis.erase(eni_);  // deleted behind the agent's back
  tick(Duration(360000));
  EXPECT_EQ(ec2_.calls["CreateNetworkInterface"], 1);
  ASSERT_EQ(agent.published.size(), 1u);
  EXPECT_NE(agent.published[0].eniId, eni_);
  EXPECT_TRUE(ec2_.enis.at(agent.published[0].eniId).attachment);
}

// A NodeENI with a problem (here a subnet name nothing is tagged with) makes every full pass read
// EC2, since its records never look satisfied. The periodic check asks IMDS alone: with nothing
// drifted, no EC2 call at any check, and the problem stays reported.
TEST_F(EniManagerRestart, ThePeriodicCheckOfANodeWithAProblemNodeEniReadsNoEc2) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Agent agent(ec2);
  Json::Value broken = nodeEniObject();
  broken["metadata"]["name"] = "broken";
  broken["spec"].removeMember("subnetID");
  broken["spec"]["subnetName"] = "no-such-subnet";
  agent.run(nodeObject(""), {nodeEniObject(), broken});
  ASSERT_EQ(agent.published.size(), 1u);
  ASSERT_EQ(agent.records.count("broken." + std::string(kNode)), 1u);
  const auto reason = agent.records["broken." + std::string(kNode)].toStyledString();
  ec2.calls.clear();
  for (int i = 0; i < 40; ++i) {  // 20 minutes: at least 3 checks
    agent.scheduler.advance(Duration(30000));
    agent.answerLists();
  }
  EXPECT_GE(agent.manager->noDriftChecks(), 3u);
  EXPECT_EQ(ec2.reads() + ec2.writes(), 0);
  EXPECT_EQ(agent.records["broken." + std::string(kNode)].toStyledString(), reason);
}

TEST_F(EniManagerRestart, NoPeriodicCheckWhenItIsOff) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Agent agent(ec2);
  const Json::Value node = nodeObject("");
  EniManagerOptions options;
  options.checkInterval = Duration(0);
  agent.make(node, options);
  agent.manager->onNode(ChangeType::Added, node);
  agent.manager->onNodeEni(ChangeType::Added, nodeEniObject());
  agent.manager->start();
  for (int i = 0; i < 40; ++i) {
    agent.scheduler.advance(Duration(1000));
    agent.answerLists();
  }
  const auto passes = agent.manager->passes();
  for (int i = 0; i < 20; ++i) {
    agent.scheduler.advance(Duration(60000));
    agent.answerLists();
  }
  EXPECT_EQ(agent.manager->passes(), passes);
}

TEST_F(EniManagerRestart, AColdStartReadsOnceAndItsOwnStatusWritesStartNoEc2Pass) {
  // SetUp's run, again, to count it: one DescribeInstances and one DescribeNetworkInterfaces,
  // though the pass writes a status entry and the finalizer (those used to start more passes,
  // each reading EC2 again).
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Agent agent(ec2);
  agent.run(nodeObject(""), {nodeEniObject()});
  ASSERT_EQ(agent.published.size(), 1u);
  EXPECT_EQ(ec2.calls["CreateNetworkInterface"], 1);
  EXPECT_EQ(ec2.calls["AttachNetworkInterface"], 1);
  EXPECT_EQ(ec2.calls["DescribeInstances"], 1);
  EXPECT_EQ(ec2.calls["DescribeNetworkInterfaces"], 1);
  EXPECT_FALSE(agent.published[0].specHash.empty()) << "fully satisfied: the spec is fingerprinted";
  EXPECT_EQ(agent.publishedUnowned, std::vector<std::string>{"eni-primary"});
}

TEST_F(EniManagerRestart, AWarmRestartThatImdsConfirmsMakesNoEc2Call) {
  EXPECT_EQ(first_.publishedUnowned, (std::vector<std::string>{"eni-cni", "eni-primary"}));
  Agent restarted(ec2_);
  restarted.run(nodeObject(first_.state()), {first_.nodeEniAfter(nodeEniObject())});
  EXPECT_EQ(ec2_.reads(), 0) << "calls: " << ec2_.calls.size();
  EXPECT_EQ(ec2_.writes(), 0);
  EXPECT_EQ(restarted.manager->confirmedPasses(), 1u);
  ASSERT_EQ(restarted.manager->attachments().size(), 1u);
  const auto& a = restarted.manager->attachments()[0];
  EXPECT_EQ(a.eniId, eni_);
  EXPECT_EQ(a.deviceIndex, ec2_.enis[eni_].attachment->deviceIndex);
  EXPECT_EQ(a.mtu, 9001);
  EXPECT_EQ(a.phase, AttachmentPhase::Attached);
  EXPECT_EQ(restarted.published, first_.published) << "the same record, kept";
  // Nor an API-server write: its NodeENIAttachment, read at start, already holds the entry.
  ASSERT_EQ(restarted.records.size(), 1u);
  EXPECT_EQ(restarted.records.begin()->second["status"]["attachments"][0]["eniID"].asString(),
            eni_);
  EXPECT_TRUE(restarted.kube.patches.empty());
  EXPECT_TRUE(restarted.kube.updateBodies.empty());
  EXPECT_EQ(restarted.manager->recordWrites(), 0u);
}

// What happened while the agent was down, and what the restart then must do.
enum class Change {
  EniDetached,                 // the recorded ENI is not attached per IMDS
  EniMoved,                    // attached at another device index
  UnknownAttached,             // an attached ENI the records lack (a killed agent's, or anyone's)
  UnknownBehindAStaleImdsKey,  // ... which IMDS skips on this read: one of its keys answers 404
  SpecChanged,                 // the NodeENI's MTU changed
  StateMissing,
  StateCorrupt,
  StateOfAnotherInstance,
  NodeEniDeleted,   // gone, finalizer and all
  NodeEniDeleting,  // deletionTimestamp set, this node's entry still there
  NodeUnlabelled,   // the NodeENI no longer selects the node
};

class EniManagerRestartFallback : public EniManagerRestart,
                                  public ::testing::WithParamInterface<Change> {};

TEST_P(EniManagerRestartFallback, ReadsEc2AndConvergesWithoutDuplicateOrForeignTouch) {
  std::string state = first_.state();
  Json::Value node = nodeObject(state);
  std::vector<Json::Value> nodeEnis{first_.nodeEniAfter(nodeEniObject())};
  bool wanted = true;
  std::string staleMac;
  switch (GetParam()) {
    case Change::EniDetached:
      ec2_.enis[eni_].attachment.reset();
      ec2_.enis[eni_].status = "available";
      break;
    case Change::EniMoved:
      ec2_.enis[eni_].attachment->deviceIndex = 7;
      break;
    case Change::UnknownAttached:
      ec2_.addAttached("eni-cni-2", 2);
      break;
    case Change::UnknownBehindAStaleImdsKey:
      staleMac = ec2_.addAttached("eni-cni-2", 2).macAddress;
      break;
    case Change::SpecChanged:
      nodeEnis = {first_.nodeEniAfter(nodeEniObject(1500))};
      break;
    case Change::StateMissing:
      node = nodeObject("");
      break;
    case Change::StateCorrupt:
      node = nodeObject("{\"version\":1,");
      break;
    case Change::StateOfAnotherInstance: {
      auto s = decodeNodeState(state);
      s->instanceId = "i-0ther";
      node = nodeObject(*encodeNodeState(*s));
      break;
    }
    case Change::NodeEniDeleted:
      nodeEnis.clear();
      wanted = false;
      break;
    case Change::NodeEniDeleting:
      nodeEnis[0]["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z";
      wanted = false;
      break;
    case Change::NodeUnlabelled:
      node["metadata"]["labels"]["ng"] = "other";
      wanted = false;
      break;
  }
  Agent restarted(ec2_);
  if (!staleMac.empty()) restarted.imds.staleMacs.insert(staleMac);
  restarted.run(node, nodeEnis);
  EXPECT_EQ(restarted.manager->confirmedPasses(), 0u);
  EXPECT_GE(ec2_.calls["DescribeInstances"], 1);
  EXPECT_GE(ec2_.calls["DescribeNetworkInterfaces"], 1);
  EXPECT_EQ(ec2_.calls["CreateNetworkInterface"], 0) << "found by its ownership tags";
  ASSERT_TRUE(ec2_.enis.count("eni-cni"));
  EXPECT_TRUE(ec2_.enis["eni-cni"].attachment) << "not the agent's: never detached";
  if (GetParam() == Change::UnknownAttached || GetParam() == Change::UnknownBehindAStaleImdsKey) {
    EXPECT_TRUE(ec2_.enis["eni-cni-2"].attachment);
  }
  if (wanted) {
    ASSERT_EQ(restarted.manager->attachments().size(), 1u);
    EXPECT_EQ(restarted.manager->attachments()[0].eniId, eni_);
    ASSERT_TRUE(ec2_.enis[eni_].attachment);
  } else {
    EXPECT_TRUE(restarted.manager->attachments().empty());
    EXPECT_EQ(ec2_.enis.count(eni_), 0u) << "its own ENI nobody wants: detached and deleted";
  }
}

INSTANTIATE_TEST_SUITE_P(Changes, EniManagerRestartFallback,
                         ::testing::Values(Change::EniDetached, Change::EniMoved,
                                           Change::UnknownAttached,
                                           Change::UnknownBehindAStaleImdsKey, Change::SpecChanged,
                                           Change::StateMissing, Change::StateCorrupt,
                                           Change::StateOfAnotherInstance, Change::NodeEniDeleted,
                                           Change::NodeEniDeleting, Change::NodeUnlabelled));

// After a fallback pass the records are the EC2 pass's again: the next restart is free.
TEST_F(EniManagerRestart, AfterAFallbackTheNextRestartIsFreeAgain) {
  ec2_.addAttached("eni-cni-2", 2);
  Agent second(ec2_);
  second.run(nodeObject(first_.state()), {first_.nodeEniAfter(nodeEniObject())});
  ASSERT_EQ(second.manager->confirmedPasses(), 0u);
  ec2_.calls.clear();
  Agent third(ec2_);
  third.run(nodeObject(second.state()), {second.nodeEniAfter(nodeEniObject())});
  EXPECT_EQ(ec2_.reads(), 0);
  EXPECT_EQ(third.manager->confirmedPasses(), 1u);
}

// A pass that leaves something to retry records no spec fingerprint, and its retry reads EC2
// whatever IMDS says.
TEST_F(EniManagerRestart, APassThatFailedMakesTheNextOneReadEc2) {
  ec2_.enis[eni_].attachment.reset();  // the restart re-attaches, then DeleteOnTermination fails
  ec2_.failNext["ModifyNetworkInterfaceAttribute"] = Error{ErrorCode::Transient, "injected"};
  Agent restarted(ec2_);
  restarted.run(nodeObject(first_.state()), {first_.nodeEniAfter(nodeEniObject())});
  EXPECT_EQ(ec2_.calls["AttachNetworkInterface"], 1);
  EXPECT_EQ(ec2_.calls["ModifyNetworkInterfaceAttribute"], 2) << "failed once, then retried";
  EXPECT_EQ(ec2_.calls["DescribeInstances"], 2) << "the failed pass and its retry read EC2";
  EXPECT_EQ(restarted.manager->confirmedPasses(), 0u);
  ASSERT_EQ(restarted.published.size(), 1u);
  EXPECT_FALSE(restarted.published[0].specHash.empty()) << "the retry satisfied the NodeENI";
}

// The write-ahead: no CreateNetworkInterface before the node state says a create may be in flight.
// --max-cleanup-duration on fakes, for a node the NodeENI does not even select: nothing before the
// deadline; past it one list of what remains and one update conditional on the resourceVersion.
// An agent whose update is refused (another removed the finalizer first: Conflict) reports
// nothing and does not try again at that version; the one whose update is accepted records one
// CleanupTimeout event naming the node left behind.
class EniManagerCleanupTimeout : public ::testing::Test {
 protected:
  // A manager fed a NodeENI "stuck" being deleted since 10 s ago (wall clock), started.
  void startAgent(Agent& agent) {
    agent.kube.storeObjects = true;
    EniManagerOptions o;
    o.maxCleanupDuration = std::chrono::seconds(60);
    agent.make(nodeObject(""), o);
    Json::Value n = nodeEniObject();
    n["metadata"]["name"] = "stuck";
    n["metadata"]["uid"] = "uid-stuck";
    n["spec"]["nodeSelector"]["ng"] = "elsewhere";
    n["metadata"]["finalizers"][0] = kNodeEniFinalizer;
    n["metadata"]["deletionTimestamp"] = formatTimestamp(agent.scheduler.wallSeconds() - 10);
    stored_ = agent.kube.store(ObjectRef{ResourceKind::nodeEnis(), "", "stuck", ""}, n);
    NodeEniAttachmentObject left;
    left.nodeEni = "stuck";
    left.nodeEniUid = "uid-stuck";
    left.nodeName = "gone-agent";
    NodeEniAttachment e;
    e.eniId = "eni-0left";
    e.status = "attached";
    left.entries = {e};
    left.name = nodeEniAttachmentName("stuck", "gone-agent");
    agent.records[left.name] = encodeNodeEniAttachment(left, "2026-11-30T14:00:00Z");
    agent.manager->onNode(ChangeType::Added, nodeObject(""));
    agent.manager->onNodeEni(ChangeType::Added, stored_);
    agent.manager->start();
    settle(agent, Duration(1000), 5);
  }
  void settle(Agent& agent, Duration step, int steps) {
    for (int i = 0; i < steps; ++i) {
      agent.scheduler.advance(step);
      agent.answerLists();
    }
  }
  static std::vector<Json::Value> events(const Agent& agent) {
    std::vector<Json::Value> out;
    for (const auto& [key, object] : agent.kube.objects) {
      if (key.rfind("events/", 0) == 0) out.push_back(object);
    }
    return out;
  }
  testing::FakeEc2 ec2_;
  Json::Value stored_;
};

TEST_F(EniManagerCleanupTimeout, OnlyTheAgentWhoseUpdateIsAcceptedReportsIt) {
  Agent agent(ec2_);
  startAgent(agent);
  EXPECT_EQ(agent.kube.updates, 0) << "before the deadline";
  settle(agent, Duration(10000), 8);  // past 60 s and any node's turn (under 6 s)
  ASSERT_EQ(agent.kube.updates, 1);
  const Json::Value& sent = agent.kube.updateBodies[0].second;
  EXPECT_EQ(sent["metadata"]["resourceVersion"], stored_["metadata"]["resourceVersion"]);
  EXPECT_EQ(sent["metadata"].get("finalizers", Json::Value(Json::arrayValue)).size(), 0u);
  auto reported = events(agent);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0]["reason"].asString(), "CleanupTimeout");
  EXPECT_NE(reported[0]["message"].asString().find("gone-agent (eni-0left)"), std::string::npos)
      << reported[0]["message"].asString();
  EXPECT_TRUE(ec2_.calls.empty()) << "no EC2 call for a NodeENI that does not select the node";
}

TEST_F(EniManagerCleanupTimeout, AnAgentWhoseUpdateIsRefusedReportsNothingAndDoesNotRepeat) {
  Agent agent(ec2_);
  startAgent(agent);
  // Another agent's update got there first: the stored version moves on.
  Json::Value won = stored_;
  won["metadata"]["finalizers"] = Json::Value(Json::arrayValue);
  agent.kube.store(ObjectRef{ResourceKind::nodeEnis(), "", "stuck", ""}, won);
  settle(agent, Duration(10000), 8);
  EXPECT_EQ(agent.kube.updates, 1) << "one try at the version it saw, refused";
  EXPECT_TRUE(events(agent).empty());
  settle(agent, Duration(60000), 5);
  EXPECT_EQ(agent.kube.updates, 1) << "not repeated until the watch shows a new version";
}

TEST(EniManagerWriteAhead, CreatesOnlyOnceTheRecordIsStoredAndClearsItWhenDone) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Agent agent(ec2);
  agent.writeAhead = true;
  agent.run(nodeObject(""), {nodeEniObject()});
  ASSERT_EQ(agent.recorded.size(), 1u);
  EXPECT_EQ(agent.recorded[0], std::vector<std::string>{"storage"});
  EXPECT_EQ(agent.manager->writeAheads(), 1u);
  EXPECT_EQ(ec2.calls["CreateNetworkInterface"], 1);
  EXPECT_EQ(ec2.calls["DescribeInstances"], 2)
      << "the pass before the write-ahead, and the one after";
  ASSERT_EQ(agent.published.size(), 1u);
  EXPECT_FALSE(agent.published[0].specHash.empty());
  EXPECT_TRUE(agent.publishedCreating.empty()) << "a clean pass clears the write-ahead";
}

TEST(EniManagerWriteAhead, AWriteAheadNotStoredCreatesNothing) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Agent agent(ec2);
  agent.writeAhead = true;
  agent.storeWriteAhead = false;
  agent.run(nodeObject(""), {nodeEniObject()});
  EXPECT_GE(agent.recorded.size(), 2u) << "retried";
  EXPECT_EQ(ec2.calls["CreateNetworkInterface"], 0);
  EXPECT_TRUE(agent.published.empty());
}

// IMDS's walk (a dozen local requests per interface) is what the records' unowned ENIs come from.
// A pass that attaches walks before it attaches, so its new links need not wait for a walk over
// them; a pass that releases walks after the releases, so they need not wait for it.
TEST(EniManagerImdsWalk, BeforeTheAttachesAndAfterTheReleases) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  std::vector<std::string> calls;
  ec2.onCall = [&](const std::string& action) { calls.push_back(action); };
  Agent agent(ec2);
  agent.imds.onWalk = [&] { calls.push_back("imds"); };
  agent.run(nodeObject(""), {nodeEniObject()});
  auto at = [&](const std::string& action) {
    return std::find(calls.begin(), calls.end(), action) - calls.begin();
  };
  ASSERT_LT(at("AttachNetworkInterface"), static_cast<long>(calls.size()));
  EXPECT_EQ(calls[at("CreateNetworkInterface") - 1], "imds")
      << "the creating pass walks after its reads, before it creates";

  calls.clear();
  agent.manager->onNodeEni(ChangeType::Deleted, nodeEniObject());
  for (int i = 0; i < 20 && !agent.manager->idle(); ++i) agent.scheduler.advance(Duration(1000));
  ASSERT_LT(at("DeleteNetworkInterface"), static_cast<long>(calls.size()));
  EXPECT_EQ(calls.back(), "imds") << "the releasing pass walks after its delete";
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "imds"), 1);
}

// Two subnets, so one pass creates and attaches two ENIs. The kernel shows the first ENI's link
// while the pass attaches the second: the event that announces it configures it (MTU and up in one
// request), though the pass has recorded nothing yet. The second attach fails, and the MAC the pass
// handed over for it is not left managed when the pass ends.
TEST(EniManagerLinks, ALinkIsConfiguredByItsFirstEventWhileThePassStillAttaches) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Agent agent(ec2);
  testing::FakeLinkManager kernel;
  LinkReconciler reconciler(kernel, agent.scheduler);
  agent.links = &reconciler;
  Json::Value two = nodeEniObject(9001);
  two["spec"].removeMember("subnetID");
  two["spec"]["subnetIDs"][0] = "subnet-b";
  two["spec"]["subnetIDs"][1] = "subnet-c";

  std::vector<std::string> macs;  // the pass's ENIs, in the order they were attached
  std::size_t requestsMidPass = 0;
  std::size_t recordedMidPass = 0;
  ec2.onCall = [&](const std::string& action) {
    if (action != "AttachNetworkInterface") return;
    for (const auto& [id, e] : ec2.enis) {  // the one about to be attached
      if (!e.attachment && std::find(macs.begin(), macs.end(), e.macAddress) == macs.end())
        macs.push_back(e.macAddress);
    }
    if (ec2.calls["AttachNetworkInterface"] != 2) return;
    // The first ENI's interface appears, down, at the default MTU.
    reconciler.onEvent({LinkEventType::New, LinkInfo{7, "eth1", macs[0], 0, 1500, "down"}});
    requestsMidPass = kernel.requests.size();
    recordedMidPass = agent.manager->attachments().size() + agent.published.size();
    ec2.failNext["AttachNetworkInterface"] = Error{ErrorCode::Invalid, "injected"};
  };
  agent.make(nodeObject(""));
  agent.manager->onNode(ChangeType::Added, nodeObject(""));
  agent.manager->onNodeEni(ChangeType::Added, two);
  agent.manager->start();
  for (int i = 0; i < 50 && ec2.calls["AttachNetworkInterface"] < 2; ++i) {
    agent.answerLists();
    agent.scheduler.advance(Duration(100));
  }
  ASSERT_EQ(ec2.calls["AttachNetworkInterface"], 2);
  ASSERT_EQ(macs.size(), 2u);

  EXPECT_EQ(recordedMidPass, 0u) << "the pass had recorded nothing when the link came";
  ASSERT_EQ(requestsMidPass, 1u) << "the announcing event configured the link, mid-pass";
  EXPECT_EQ(kernel.requests[0].ifindex, 7);
  EXPECT_EQ(kernel.requests[0].mtu, 9001u);
  EXPECT_TRUE(kernel.requests[0].up) << "MTU and up in one request";
  EXPECT_EQ(agent.manager->linksWantedInPass(), 2u);

  // The pass has ended (the executor is inline): the attached ENI's link stays managed, the one
  // whose attach failed is not.
  EXPECT_EQ(agent.manager->attachments().size(), 1u);
  EXPECT_EQ(reconciler.links().count(macs[0]), 1u);
  EXPECT_EQ(reconciler.links().count(macs[1]), 0u) << "no stale wanted MAC";
  reconciler.onEvent({LinkEventType::New, LinkInfo{7, "eth1", macs[0], IFF_UP, 9001, "up"}});
  EXPECT_EQ(reconciler.links().at(macs[0]).state, LinkState::Configured);
  EXPECT_EQ(kernel.requests.size(), 1u);
}

// Killed after the write-ahead (and maybe after the create): the restart trusts no record while
// the state says a create may have been in flight, even with every other record confirmed.
TEST_F(EniManagerRestart, ARecordedWriteAheadMakesTheRestartReadEc2AndFindTheEni) {
  // The previous run recorded its write-ahead for a second NodeENI and was killed right after
  // creating that ENI; the NodeENI was deleted while the agent was down.
  NetworkInterface orphan;
  orphan.id = "eni-orphan";
  orphan.subnetId = "subnet-b";
  orphan.status = "available";
  for (const auto& t : ec2_.enis[eni_].tags) {
    if (t.key != "NodeENI") orphan.tags.push_back(t);
  }
  orphan.tags.push_back({"NodeENI", "scratch"});
  ec2_.enis[orphan.id] = orphan;
  auto state = decodeNodeState(first_.state());
  ASSERT_TRUE(state);
  state->creating = {"scratch"};
  Agent restarted(ec2_);
  restarted.writeAhead = true;
  restarted.run(nodeObject(*encodeNodeState(*state)), {first_.nodeEniAfter(nodeEniObject())});
  EXPECT_EQ(restarted.manager->confirmedPasses(), 0u);
  EXPECT_GE(ec2_.calls["DescribeNetworkInterfaces"], 1);
  EXPECT_EQ(ec2_.enis.count("eni-orphan"), 0u) << "found by its ownership tags and deleted";
  EXPECT_EQ(ec2_.enis.count("eni-cni"), 1u);
  EXPECT_TRUE(restarted.publishedCreating.empty());
  // And the restart after that is free again.
  ec2_.calls.clear();
  Agent third(ec2_);
  third.writeAhead = true;
  third.run(nodeObject(restarted.state()), {restarted.nodeEniAfter(nodeEniObject())});
  EXPECT_EQ(ec2_.reads(), 0);
}

// Only its own records let the agent release an ENI: a release that did not finish, and a pass
// that stopped early, keep the records, so neither a retry nor a restart loses the right.
TEST_F(EniManagerRestart, AReleaseThatDidNotFinishStaysRecordedUntilTheEniIsGone) {
  ec2_.failNext["DeleteNetworkInterface"] = Error{ErrorCode::Transient, "injected"};
  Agent restarted(ec2_);
  // The NodeENI is gone: its ENI is detached, the delete fails, and the agent is killed before
  // the retry (run() stops at idle; the retry waits 5 s, so stop the scheduler first).
  EniManagerOptions options;
  options.retryDelay = Duration(3600 * 1000);
  restarted.make(nodeObject(first_.state()), options);
  restarted.manager->onNode(ChangeType::Added, nodeObject(first_.state()));
  restarted.manager->start();
  restarted.answerLists();
  restarted.scheduler.advance(Duration(1000));
  ASSERT_EQ(ec2_.calls["DeleteNetworkInterface"], 1);
  ASSERT_EQ(ec2_.enis.count(eni_), 1u) << "the delete failed";
  ASSERT_EQ(restarted.published.size(), 1u) << "the half-released ENI stays recorded";
  EXPECT_EQ(restarted.published[0].eniId, eni_);
  EXPECT_EQ(restarted.published[0].phase, AttachmentPhase::Releasing);

  // The next run, from that record, finishes the job.
  NodeState s;
  s.instanceId = ec2_.instanceId;
  s.attachments = restarted.published;
  Agent next(ec2_);
  next.run(nodeObject(*encodeNodeState(s)), {});
  EXPECT_EQ(ec2_.enis.count(eni_), 0u);
  EXPECT_TRUE(next.published.empty());
}

TEST_F(EniManagerRestart, APassThatStoppedEarlyKeepsTheRecords) {
  ec2_.enis[eni_].attachment.reset();  // IMDS disagrees: the pass reads EC2, which fails
  ec2_.failNext["DescribeInstances"] = Error{ErrorCode::Transient, "injected"};
  Agent restarted(ec2_);
  EniManagerOptions options;
  options.retryDelay = Duration(3600 * 1000);
  restarted.make(nodeObject(first_.state()), options);
  restarted.manager->onNode(ChangeType::Added, nodeObject(first_.state()));
  restarted.manager->onNodeEni(ChangeType::Added, first_.nodeEniAfter(nodeEniObject()));
  restarted.manager->start();
  restarted.answerLists();
  restarted.scheduler.advance(Duration(1000));
  ASSERT_EQ(ec2_.calls["DescribeInstances"], 1);
  EXPECT_EQ(restarted.published, first_.published) << "nothing learnt, nothing forgotten";
}

// An ENI carrying eni-agent's tags for this instance and this node, that no record names: a pod,
// a peer or any tool allowed CreateTags could have put them there. Left alone, warned about once.
TEST_F(EniManagerRestart, AnEniWithForgedTagsAndNoRecordIsNeverReleased) {
  NetworkInterface& forged = ec2_.addAttached("eni-forged", 3);
  forged.tags = ownershipTags("ghost", kNode, "subnet-b", ec2_.instanceId);
  NetworkInterface& pod = ec2_.addAttached("eni-pods", 4);
  pod.tags = ownershipTags("ghost", kNode, "subnet-b", ec2_.instanceId);
  pod.privateIpAddresses = {pod.privateIpAddress, "10.0.9.1", "10.0.9.2"};
  std::vector<std::string> warnings;
  logging::setSink([&](const std::string& line) {
    if (line.find("not detaching or deleting") != std::string::npos) warnings.push_back(line);
  });
  Agent restarted(ec2_);
  restarted.run(nodeObject(first_.state()), {first_.nodeEniAfter(nodeEniObject(1500))});
  // A second EC2 pass: the spec changes again.
  restarted.manager->onNodeEni(ChangeType::Modified, first_.nodeEniAfter(nodeEniObject(1400)));
  for (int i = 0; i < 20 && !restarted.manager->idle(); ++i)
    restarted.scheduler.advance(Duration(1000));
  logging::setSink(nullptr);
  EXPECT_GE(ec2_.calls["DescribeInstances"], 2);
  EXPECT_EQ(ec2_.calls["DetachNetworkInterface"], 0);
  EXPECT_EQ(ec2_.calls["DeleteNetworkInterface"], 0);
  ASSERT_EQ(warnings.size(), 2u) << "once per ENI, not every pass";
  EXPECT_NE(warnings[0].find("not in this agent's records"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("2 secondary private IPs"), std::string::npos) << warnings[1];
  // Not its own: recorded as someone else's, so a warm restart need not read EC2 for them.
  EXPECT_EQ(restarted.publishedUnowned,
            (std::vector<std::string>{"eni-cni", "eni-forged", "eni-pods", "eni-primary"}));
}

// status.attachments entries of this node that another tool wrote (aws-multi-eni-controller's,
// under its own field manager) survive the agent's empty apply, as the API server keeps what
// another manager owns: the log says they stay, not that they were removed.
TEST(EniManagerOldEntries, EntriesAnotherToolWroteAreSaidToStayNotToBeRemoved) {
  testing::FakeEc2 ec2;
  ec2.addAttached("eni-primary", 0);
  Json::Value old;
  old["nodeID"] = kNode;
  old["deviceIndex"] = 1;
  old["eniID"] = "eni-theirs";
  old["status"] = "attached";
  Json::Value neni = nodeEniObject();
  neni["metadata"]["finalizers"][0] = kNodeEniFinalizer;
  neni["status"]["attachments"].append(old);
  Agent agent(ec2);
  agent.kube.patchAnswer = [&](const ObjectRef& ref,
                               const Json::Value& body) -> Result<Json::Value> {
    if (ref.kind.plural == "nodeeniattachments") agent.records[ref.name] = body;
    return ref.subresource == "status" ? neni : body;  // the other manager's entries stay
  };
  std::vector<std::string> lines;
  logging::setSink([&](const std::string& line) {
    if (line.find("status.attachments") != std::string::npos) lines.push_back(line);
  });
  agent.run(nodeObject(""), {neni});
  logging::setSink(nullptr);
  ASSERT_EQ(lines.size(), 1u) << "one apply, one line";
  EXPECT_NE(lines[0].find("keeps entries of this node that another tool wrote"), std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[0].find("removed"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace eni
