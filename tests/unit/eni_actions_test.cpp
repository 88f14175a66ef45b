// planEniActions, the lifecycle plan both modes share: a table of situations, each with the
// actions it must give (every EniActionKind appears), in the manner of planner_test's HashMatrix.
#include "agent/eni/eni_actions.h"
#include "agent/eni/write_ahead.h"

#include <gtest/gtest.h>

#include <functional>

namespace eni {
namespace {

constexpr const char* kMe = "i-me";
constexpr const char* kNode = "n1";

DesiredEni want(const std::string& owner = "storage", const std::string& subnet = "subnet-a",
                std::int64_t index = 1) {
  DesiredEni d;
  d.nodeEni = owner;
  d.subnetId = subnet;
  d.deviceIndex = index;
  d.deleteOnTermination = true;
  d.tags = ownershipTags(owner, kNode, subnet, kMe);
  return d;
}

// An ENI of `owner` in `subnet` carrying eni-agent's tags for this instance; attached here at
// `index` unless it is -1.
NetworkInterface owned(const std::string& id, const std::string& owner = "storage",
                       std::int64_t index = 1, const std::string& subnet = "subnet-a") {
  NetworkInterface e;
  e.id = id;
  e.subnetId = subnet;
  e.status = index < 0 ? "available" : "in-use";
  e.privateIpAddresses = {"10.0.0.9"};
  e.tags = ownershipTags(owner, kNode, subnet, kMe);
  if (index >= 0) e.attachment = EniAttachment{"attach-" + id, kMe, index, "attached", false};
  return e;
}

AttachmentRecord record(const std::string& eni, const std::string& owner = "storage") {
  AttachmentRecord r;
  r.nodeEni = owner;
  r.eniId = eni;
  r.attachmentId = "attach-" + eni;
  r.phase = AttachmentPhase::Attached;
  return r;
}

struct Situation {
  std::vector<DesiredEni> desired{want()};
  LifecycleObservation obs;
  DeleteOnTerminationMemo memo;
  Situation() {
    obs.owner = {kMe, kNode};
    obs.listed = std::vector<NetworkInterface>{};
    obs.records.instanceId = kMe;
    obs.createStored = {"storage"};
    obs.usedIndexes = {0};
  }
};

// What a plan did, in one line: "ensure=<owner>:<kinds>;... release=... hold=... refuse=...
// await=... problem=...", only the parts that are there.
std::string summary(const EniActions& a) {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
  for (const auto& s : a.ensure) {
    std::string kinds;
    for (auto k : s.kinds()) kinds += (kinds.empty() ? "" : "+") + std::string(toString(k));
    if (s.attachAt) kinds += "@" + std::to_string(*s.attachAt);
    add("ensure=" + s.desired.nodeEni + ":" + kinds);
  }
  for (const auto& o : a.awaitWriteAhead)
    add(std::string(toString(EniActionKind::AwaitWriteAhead)) + "=" + o);
  for (const auto& r : a.release) add("release=" + r.eni.id);
  for (const auto& h : a.held) add("hold=" + h.eni.id);
  for (const auto& r : a.refused) add("refuse=" + r.eni.id);
  for (const auto& p : a.problems) add("problem=" + p.owner);
  return out;
}

struct Row {
  const char* name;
  std::function<void(Situation&)> setup;
  const char* expected;
};

TEST(EniActions, TableOfSituations) {
  const std::vector<Row> rows = {
      {"nothing found: create, attach at the first free index, DeleteOnTermination",
       [](Situation& s) {
         s.obs.usedIndexes = {0, 1};
       },
       "ensure=storage:create+attach+set-delete-on-termination@2"},
      {"nothing found and no write-ahead stored: the create waits",
       [](Situation& s) { s.obs.createStored.clear(); }, "await-write-ahead=storage"},
      {"no write-ahead required (a mode without one): create at once",
       [](Situation& s) {
         s.obs.createStored.clear();
         s.obs.writeAheadRequired = false;
       },
       "ensure=storage:create+attach+set-delete-on-termination@1"},
      {"own ENI attached here, EC2 shows DeleteOnTermination: keep",
       [](Situation& s) {
         auto e = owned("eni-1");
         e.attachment->deleteOnTermination = true;
         s.obs.listed->push_back(e);
       },
       "ensure=storage:keep"},
      {"own ENI attached here, value unknown: set DeleteOnTermination",
       [](Situation& s) { s.obs.listed->push_back(owned("eni-1")); },
       "ensure=storage:set-delete-on-termination"},
      {"own ENI attached here, the memo knows it was set: keep",
       [](Situation& s) {
         s.obs.listed->push_back(owned("eni-1"));
         s.memo.set("attach-eni-1", true);
       },
       "ensure=storage:keep"},
      {"own ENI detached (a crash between create and attach): attach, no create",
       [](Situation& s) { s.obs.listed->push_back(owned("eni-1", "storage", -1)); },
       "ensure=storage:attach+set-delete-on-termination@1"},
      {"aws-multi-eni-controller's ENI: adopt, then attach",
       [](Situation& s) {
         NetworkInterface e = owned("eni-old", "storage", -1);
         e.tags = {{"NodeENI", "storage"},
                   {"Node", kNode},
                   {"SubnetID", "subnet-a"},
                   {kLegacyManagedByTag, kLegacyManagedByValue}};
         s.obs.listed->push_back(e);
       },
       "ensure=storage:adopt+attach+set-delete-on-termination@1"},
      {"own ENI attached to another instance: not usable, create another; never released",
       [](Situation& s) {
         auto e = owned("eni-1");
         e.attachment->instanceId = "i-other";
         s.obs.listed->push_back(e);
       },
       "ensure=storage:create+attach+set-delete-on-termination@1 refuse=eni-1"},
      {"an ENI with its tags and pod IPs: refused, never attached",
       [](Situation& s) {
         auto e = owned("eni-pods", "storage", -1);
         e.privateIpAddresses = {"10.0.0.9", "10.0.0.10"};
         s.obs.listed->push_back(e);
       },
       "ensure=storage:create+attach+set-delete-on-termination@1 refuse=eni-pods"},
      {"live (recorded, attached per IMDS): keep, DeleteOnTermination assumed",
       [](Situation& s) {
         s.obs.listed.reset();
         s.obs.live["storage"] = owned("eni-1");
       },
       "ensure=storage:keep"},
      {"live, but this process set another value: set it again",
       [](Situation& s) {
         s.obs.listed.reset();
         s.obs.live["storage"] = owned("eni-1");
         s.memo.set("attach-eni-1", false);
       },
       "ensure=storage:set-delete-on-termination"},
      {"not live and the list could not be read: a problem",
       [](Situation& s) {
         s.obs.listed.reset();
         s.obs.listError = "cannot list";
       },
       "problem=storage"},
      {"unwanted, recorded, attached here: release",
       [](Situation& s) {
         s.desired.clear();
         s.obs.listed->push_back(owned("eni-1"));
         s.obs.records.attachments = {record("eni-1")};
       },
       "release=eni-1"},
      {"unwanted, named by the write-ahead only: release",
       [](Situation& s) {
         s.desired.clear();
         s.obs.listed->push_back(owned("eni-1", "storage", -1));
       },
       "release=eni-1"},
      {"unwanted, forged tags, no record: refused",
       [](Situation& s) {
         s.desired.clear();
         s.obs.createStored.clear();
         s.obs.listed->push_back(owned("eni-forged"));
       },
       "refuse=eni-forged"},
      {"unwanted, recorded, its owner has a problem: held",
       [](Situation& s) {
         s.desired.clear();
         s.obs.problemOwners = {"storage"};
         s.obs.listed->push_back(owned("eni-1"));
         s.obs.records.attachments = {record("eni-1")};
       },
       "hold=eni-1"},
      {"unwanted and without eni-agent's tags: not touched, not even refused",
       [](Situation& s) {
         s.desired.clear();
         NetworkInterface e = owned("eni-cni");
         e.tags = {{"Node", kNode}};
         s.obs.listed->push_back(e);
       },
       ""},
      {"nothing listed: the records' unwanted ENIs are released (release() verifies)",
       [](Situation& s) {
         s.desired.clear();
         s.obs.listed.reset();
         s.obs.records.attachments = {record("eni-1")};
       },
       "release=eni-1"},
      {"nothing listed, the records are another instance's: nothing",
       [](Situation& s) {
         s.desired.clear();
         s.obs.listed.reset();
         s.obs.records.instanceId = "i-other";
         s.obs.records.attachments = {record("eni-1")};
       },
       ""},
      {"host mode's prefix: a NodeENI ENI of the same instance is not host mode's",
       [](Situation& s) {
         s.desired.clear();
         s.obs.ownerPrefix = "host-";
         s.obs.listed->push_back(owned("eni-1"));
         s.obs.records.attachments = {record("eni-1")};
       },
       ""},
      {"two subnets, one ENI found: the other is created at the next free index",
       [](Situation& s) {
         s.desired.push_back(want("storage", "subnet-b", 1));
         s.obs.usedIndexes = {0, 1};
         s.obs.listed->push_back(owned("eni-1"));
       },
       "ensure=storage:set-delete-on-termination "
       "ensure=storage:create+attach+set-delete-on-termination@2"},
      {"an owner with a problem gets nothing new",
       [](Situation& s) { s.obs.problemOwners = {"storage"}; }, ""},
  };
  for (const auto& row : rows) {
    Situation s;
    row.setup(s);
    EXPECT_EQ(summary(planEniActions(s.desired, s.obs, s.memo)), row.expected) << row.name;
  }
}

TEST(EniActions, AFailedOwnerHoldsItsReleases) {
  Situation s;
  s.desired.clear();
  s.obs.listed = {owned("eni-1"), owned("eni-2", "scratch")};
  s.obs.records.attachments = {record("eni-1"), record("eni-2", "scratch")};
  EniActions a = planEniActions(s.desired, s.obs, s.memo);
  ASSERT_EQ(a.release.size(), 2u);
  holdReleasesOf({"scratch"}, a);
  EXPECT_EQ(summary(a), "release=eni-1 hold=eni-2");
}

TEST(EniActions, TheMemoKnowsWhatWasSetOrAssumed) {
  DeleteOnTerminationMemo memo;
  EXPECT_FALSE(memo.settled("a", true, std::nullopt));
  EXPECT_TRUE(memo.settled("a", true, true)) << "EC2 shows it";
  memo.assume("a", true);
  memo.assume("a", false);  // an assumption never replaces what is known
  EXPECT_TRUE(memo.settled("a", true, std::nullopt));
  memo.set("a", false);
  EXPECT_FALSE(memo.settled("a", true, std::nullopt));
  memo.forget("a");
  EXPECT_FALSE(memo.known("a"));
}

TEST(CreateWriteAhead, WantedRecordingStoredAndDroppedWhenNotStored) {
  CreateWriteAhead w;
  w.load({"old"});  // the previous run's record: a create may have been in flight
  EXPECT_EQ(w.stored(), std::set<std::string>{"old"});
  w.want({"a", "old"});
  EXPECT_EQ(w.names(), (std::vector<std::string>{"a", "old"}));
  EXPECT_EQ(w.stored(), std::set<std::string>{"old"}) << "a is only wanted";
  ASSERT_TRUE(w.begin());
  EXPECT_TRUE(w.recording());
  w.want({"b"});
  EXPECT_FALSE(w.begin()) << "one write at a time";
  w.finished(false);
  EXPECT_EQ(w.names(), (std::vector<std::string>{"b", "old"})) << "not stored: not recorded";
  ASSERT_TRUE(w.begin());
  w.finished(true);
  EXPECT_EQ(w.stored(), (std::set<std::string>{"b", "old"}));
  w.clear();
  EXPECT_TRUE(w.empty());
}

}  // namespace
}  // namespace eni
