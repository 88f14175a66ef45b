// NodeEniStatusWriter and the typed NodeENI: this node's status entries by server-side apply, the
// finalizer and a dead node's prune by whole-object updates that lose nothing.
#include "agent/kube/nodeeni_status_writer.h"

#include <gtest/gtest.h>

#include <optional>

#include "agent/base/json.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeKubeApi;
using testing::ManualScheduler;

constexpr const char* kFinalizer = "nodeeni.networking.k8s.aws/finalizer";

// A NodeENI as the API server shows it, with fields the typed struct does not model.
constexpr const char* kServed = R"({
  "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
  "metadata": {"name": "fast-path", "uid": "uid-1", "resourceVersion": "7",
               "labels": {"team": "net"}, "annotations": {"example.com/note": "keep me"},
               "finalizers": ["example.com/hold"],
               "deletionTimestamp": "2026-01-01T00:00:00Z"},
  "spec": {"nodeSelector": {"eni": "yes"}, "subnetIDs": ["subnet-1", "subnet-2"],
           "subnetName": "fast", "securityGroupIDs": ["sg-1"], "securityGroupNames": ["web"],
           "deviceIndex": 2, "deleteOnTermination": false, "description": "fast path",
           "mtu": 9001, "futureField": {"x": 1}},
  "status": {"attachments": [
    {"nodeID": "node-a", "instanceID": "i-a", "eniID": "eni-a", "attachmentID": "attach-a",
     "subnetID": "subnet-1", "subnetCIDR": "10.0.1.0/24", "deviceIndex": 2, "mtu": 9001,
     "status": "attached", "lastUpdated": "2026-01-01T00:00:00Z"},
    {"nodeID": "node-gone", "deviceIndex": 2, "status": "failed", "message": "no subnet",
     "lastUpdated": "2026-01-01T00:00:00Z", "fromANewerAgent": true},
    {"nodeID": "node-b", "eniID": "eni-b", "deviceIndex": 2, "status": "attached"}]}
})";

Json::Value served() { return *parseJson(kServed); }

class NodeEniStatusWriterTest : public ::testing::Test {
 protected:
  NodeEni nodeEni() {
    auto decoded = decodeNodeEni(served());
    EXPECT_TRUE(decoded);
    return *decoded;
  }
  Callback<NodeEni> remember() {
    return [this](Result<NodeEni> r) { answer = std::move(r); };
  }
  static NodeEniAttachment attached() {
    NodeEniAttachment a;
    a.instanceId = "i-a";
    a.eniId = "eni-a";
    a.attachmentId = "attach-a";
    a.subnetId = "subnet-1";
    a.deviceIndex = 2;
    a.mtu = 9001;
    a.status = "attached";
    return a;
  }
  static NodeEniAttachment failed() {
    NodeEniAttachment a;
    a.deviceIndex = 3;
    a.status = "failed";
    a.message = "cannot create an ENI in subnet-2: refused";
    return a;
  }

  FakeKubeApi kube;
  ManualScheduler clock;
  NodeEniStatusWriter writer{kube, clock, "node-a"};
  std::optional<Result<NodeEni>> answer;
};

TEST(NodeEniDecode, CarriesWhatTheManagerReads) {
  auto n = decodeNodeEni(served());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->meta.name, "fast-path");
  EXPECT_EQ(n->meta.uid, "uid-1");
  EXPECT_EQ(n->meta.resourceVersion, "7");
  EXPECT_EQ(n->meta.finalizers, std::vector<std::string>{"example.com/hold"});
  EXPECT_TRUE(n->meta.deleting);
  EXPECT_EQ(n->spec.nodeSelector, (std::map<std::string, std::string>{{"eni", "yes"}}));
  EXPECT_EQ(n->spec.subnetIds, (std::vector<std::string>{"subnet-1", "subnet-2"}));
  EXPECT_EQ(n->spec.subnetName, "fast");
  EXPECT_EQ(n->spec.securityGroupIds, std::vector<std::string>{"sg-1"});
  EXPECT_EQ(n->spec.securityGroupNames, std::vector<std::string>{"web"});
  EXPECT_EQ(n->spec.deviceIndex, 2);
  EXPECT_FALSE(n->spec.deleteOnTermination);
  EXPECT_EQ(n->spec.description, "fast path");
  EXPECT_EQ(n->spec.mtu, 9001);
  EXPECT_EQ(n->specJson, toJson(served()["spec"])) << "what a spec fingerprint hashes";
  ASSERT_EQ(n->attachments.size(), 3u);
  EXPECT_EQ(n->attachments[0].subnetCidr, "10.0.1.0/24");
  EXPECT_EQ(n->attachments[0].lastUpdated, "2026-01-01T00:00:00Z");
  EXPECT_EQ(n->attachments[1].nodeId, "node-gone");
  EXPECT_EQ(n->attachments[1].message, "no subnet");
  ASSERT_NE(n->source, nullptr);
  EXPECT_EQ(*n->source, served());
}

TEST(NodeEniDecode, AMissingSpecHasTheFingerprintOfNull) {
  auto n = decodeNodeEni(*parseJson(R"({"metadata":{"name":"x"}})"));
  ASSERT_TRUE(n);
  EXPECT_EQ(n->specJson, toJson(Json::Value()));
  EXPECT_EQ(n->spec.deviceIndex, 1);
  EXPECT_TRUE(n->spec.deleteOnTermination);
}

TEST_F(NodeEniStatusWriterTest, AppliesThisNodesEntriesToTheStatusAsItsOwnFieldManager) {
  EXPECT_TRUE(writer.applyEntries("fast-path", {attached(), failed()}, remember()));
  ASSERT_EQ(kube.patches.size(), 1u);
  const auto& [ref, body] = kube.patches[0];
  EXPECT_EQ(ref.kind.plural, "nodeenis");
  EXPECT_EQ(ref.name, "fast-path");
  EXPECT_EQ(ref.subresource, "status");
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Apply);
  EXPECT_EQ(kube.patchKinds[0].second.fieldManager, "eni-agent/node-a");
  EXPECT_TRUE(kube.patchKinds[0].second.force);
  Json::Value expected = *parseJson(R"({
    "apiVersion": "networking.k8s.aws/v1alpha1", "kind": "NodeENI",
    "metadata": {"name": "fast-path"},
    "status": {"attachments": [
      {"nodeID": "node-a", "instanceID": "i-a", "eniID": "eni-a", "attachmentID": "attach-a",
       "subnetID": "subnet-1", "deviceIndex": 2, "mtu": 9001, "status": "attached"},
      {"nodeID": "node-a", "deviceIndex": 3, "status": "failed",
       "message": "cannot create an ENI in subnet-2: refused"}]}})");
  for (auto& e : expected["status"]["attachments"])
    e["lastUpdated"] = formatTimestamp(clock.wallSeconds());
  EXPECT_EQ(body, expected) << toJson(body);
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(*answer) << answer->error().message;
  EXPECT_EQ((*answer)->attachments.size(), 2u) << "the NodeENI as the server answered, decoded";
}

TEST_F(NodeEniStatusWriterTest, NoEntriesIsAnEmptyList) {
  EXPECT_TRUE(writer.applyEntries("fast-path", {}, remember()));
  ASSERT_EQ(kube.patches.size(), 1u);
  const Json::Value& list = kube.patches[0].second["status"]["attachments"];
  EXPECT_TRUE(list.isArray());
  EXPECT_EQ(list.size(), 0u) << "this node's former entries go";
}

TEST_F(NodeEniStatusWriterTest, WhatWasAppliedIsNotSentAgain) {
  EXPECT_TRUE(writer.applyEntries("fast-path", {attached()}, remember()));
  clock.advance(std::chrono::minutes(1));
  NodeEniAttachment same = attached();
  same.lastUpdated = "anything";
  same.nodeId = "ignored";
  EXPECT_FALSE(writer.applyEntries("fast-path", {same}, remember()));
  EXPECT_EQ(kube.patches.size(), 1u);
  EXPECT_TRUE(writer.applyEntries("other", {attached()}, remember())) << "per NodeENI";
  NodeEniAttachment changed = attached();
  changed.status = "Configured";
  EXPECT_TRUE(writer.applyEntries("fast-path", {changed}, remember()));
  EXPECT_EQ(kube.patches.size(), 3u);
  writer.forget("fast-path");
  EXPECT_TRUE(writer.applyEntries("fast-path", {changed}, remember())) << "a new NodeENI";
  EXPECT_EQ(kube.patches.size(), 4u);
}

TEST_F(NodeEniStatusWriterTest, AFailedApplyIsSentAgain) {
  kube.failStatusPatches = 1;
  EXPECT_TRUE(writer.applyEntries("fast-path", {attached()}, remember()));
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(*answer);
  EXPECT_TRUE(writer.applyEntries("fast-path", {attached()}, remember()));
  EXPECT_EQ(kube.patches.size(), 2u);
  EXPECT_EQ(writer.inFlight(), 0u);
}

TEST_F(NodeEniStatusWriterTest, AddsTheFinalizerByUpdatingTheWholeObject) {
  writer.setFinalizer(nodeEni(), kFinalizer, true, remember());
  ASSERT_EQ(kube.updateBodies.size(), 1u);
  const auto& [ref, body] = kube.updateBodies[0];
  EXPECT_EQ(ref.kind.plural, "nodeenis");
  EXPECT_EQ(ref.name, "fast-path");
  EXPECT_EQ(ref.subresource, "");
  Json::Value expected = served();
  expected["metadata"]["finalizers"].append(kFinalizer);
  EXPECT_EQ(body, expected) << "every other field as served, resourceVersion included";
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(*answer);
  EXPECT_EQ((*answer)->meta.finalizers, (std::vector<std::string>{"example.com/hold", kFinalizer}));
}

TEST_F(NodeEniStatusWriterTest, RemovesTheFinalizerAndKeepsTheOthers) {
  Json::Value object = served();
  object["metadata"]["finalizers"] =
      *parseJson(R"(["a", ")" + std::string(kFinalizer) + R"(", "b"])");
  auto n = decodeNodeEni(object);
  ASSERT_TRUE(n);
  writer.setFinalizer(*n, kFinalizer, false, remember());
  ASSERT_EQ(kube.updateBodies.size(), 1u);
  EXPECT_EQ(kube.updateBodies[0].second["metadata"]["finalizers"], *parseJson(R"(["a", "b"])"));
}

TEST_F(NodeEniStatusWriterTest, AFinalizerAlreadyAsAskedSendsNothing) {
  writer.setFinalizer(nodeEni(), kFinalizer, false, remember());
  EXPECT_EQ(kube.updates, 0);
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(*answer);
  EXPECT_EQ((*answer)->meta.name, "fast-path");
}

TEST_F(NodeEniStatusWriterTest, AFinalizerUpdateOfAStaleVersionConflicts) {
  kube.storeObjects = true;
  Json::Value newer = served();
  kube.store(ObjectRef{ResourceKind::nodeEnis(), "", "fast-path", ""}, newer);  // version 1
  writer.setFinalizer(nodeEni(), kFinalizer, true, remember());                 // read at version 7
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error().code, ErrorCode::Conflict);
}

TEST_F(NodeEniStatusWriterTest, WholeObjectWritesNeedTheSource) {
  NodeEni handMade = nodeEni();
  handMade.source.reset();
  writer.setFinalizer(handMade, kFinalizer, true, remember());
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error().code, ErrorCode::Invalid);
  answer.reset();
  writer.pruneNode(handMade, "node-gone", remember());
  ASSERT_TRUE(answer.has_value());
  EXPECT_FALSE(*answer);
  EXPECT_EQ(kube.updates, 0);
}

TEST_F(NodeEniStatusWriterTest, PrunesOnlyTheDeadNodesEntriesAndSendsTheRestAsTheyWere) {
  writer.pruneNode(nodeEni(), "node-gone", remember());
  ASSERT_EQ(kube.updateBodies.size(), 1u);
  const auto& [ref, body] = kube.updateBodies[0];
  EXPECT_EQ(ref.kind.plural, "nodeenis");
  EXPECT_EQ(ref.name, "fast-path");
  EXPECT_EQ(ref.subresource, "status");
  Json::Value expected = served();
  Json::Value kept(Json::arrayValue);
  kept.append(expected["status"]["attachments"][0]);
  kept.append(expected["status"]["attachments"][2]);
  expected["status"]["attachments"] = kept;
  EXPECT_EQ(body, expected) << toJson(body);
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(*answer);
  EXPECT_EQ((*answer)->attachments.size(), 2u);
}

}  // namespace
}  // namespace eni
