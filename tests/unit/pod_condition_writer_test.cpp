// PodConditionWriter: the tagger's pod writes, in exactly the shapes the admission policy allows
// (daemonset/admission-policy.yaml; the real-server check is in
// tests/integration/kube_writers_test.cpp).
#include "agent/kube/pod_condition_writer.h"

#include <gtest/gtest.h>

#include <optional>

#include "agent/base/json.h"
#include "tests/support/fake_kube_api.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

using testing::FakeKubeApi;
using testing::ManualScheduler;

class PodConditionWriterTest : public ::testing::Test {
 protected:
  PodConditionWriterTest() {
    pod.ns = "team-a";
    pod.name = "web";
    pod.resourceVersion = "42";
  }
  static Json::Value parse(const char* text) { return *parseJson(text); }
  PodConditionWriter::Done remember() {
    return [this](Result<void> r) { outcome = std::move(r); };
  }
  static PodCondition tagged(const std::string& status, const std::string& reason,
                             const std::string& message) {
    return {kTaggedConditionType, status, reason, message, ""};
  }

  FakeKubeApi kube;
  ManualScheduler clock;
  PodConditionWriter writer{kube, clock};
  ObjectMeta pod;
  std::optional<Result<void>> outcome;
};

TEST_F(PodConditionWriterTest, SetsTheConditionByStrategicMergeOnTheStatus) {
  writer.setCondition(pod, tagged("True", "Synced", "the ENI carries the pod's tags"), nullptr,
                      remember());
  ASSERT_EQ(kube.patches.size(), 1u);
  const auto& [ref, body] = kube.patches[0];
  EXPECT_EQ(ref.kind.plural, "pods");
  EXPECT_EQ(ref.ns, "team-a");
  EXPECT_EQ(ref.name, "web");
  EXPECT_EQ(ref.subresource, "status");
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Strategic);
  Json::Value expected = parse(R"({"status":{"conditions":[{"type":"eni-tagger.io/tagged",
      "status":"True","reason":"Synced","message":"the ENI carries the pod's tags"}]}})");
  expected["status"]["conditions"][0]["lastTransitionTime"] = formatTimestamp(clock.wallSeconds());
  EXPECT_EQ(body, expected) << toJson(body);
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(*outcome);
}

TEST_F(PodConditionWriterTest, TheTransitionTimeStaysWhileTheStatusDoes) {
  const PodCondition observed{kTaggedConditionType, "False", "TaggingFailed", "refused",
                              "2020-01-01T00:00:00Z"};
  writer.setCondition(pod, tagged("False", "ENILookupFailed", "no ENI holds 10.0.0.7"), &observed,
                      nullptr);
  ASSERT_EQ(kube.patches.size(), 1u);
  const Json::Value& c = kube.patches[0].second["status"]["conditions"][0];
  EXPECT_EQ(c["reason"].asString(), "ENILookupFailed");
  EXPECT_EQ(c["lastTransitionTime"].asString(), "2020-01-01T00:00:00Z")
      << "only the reason and message changed";
}

TEST_F(PodConditionWriterTest, TheTransitionTimeMovesWithTheStatus) {
  const PodCondition observed{kTaggedConditionType, "False", "TaggingFailed", "refused",
                              "2020-01-01T00:00:00Z"};
  writer.setCondition(pod, tagged("True", "Synced", "ok"), &observed, nullptr);
  ASSERT_EQ(kube.patches.size(), 1u);
  const Json::Value& c = kube.patches[0].second["status"]["conditions"][0];
  EXPECT_EQ(c["lastTransitionTime"].asString(), formatTimestamp(clock.wallSeconds()));
}

TEST_F(PodConditionWriterTest, RecordsTheLastAppliedTagsOnTheStatusByPatchOfTheirKeysAlone) {
  writer.recordLastApplied(pod, R"({"Team":"A"})", "0123456789abcdef", nullptr, nullptr,
                           remember());
  ASSERT_EQ(kube.patches.size(), 1u);
  const auto& [ref, body] = kube.patches[0];
  EXPECT_EQ(ref.subresource, "status");
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Strategic);
  Json::Value expected;
  expected["metadata"]["annotations"]["eni-tagger.io/last-applied-tags"] = R"({"Team":"A"})";
  expected["metadata"]["annotations"]["eni-tagger.io/last-applied-hash"] = "0123456789abcdef";
  EXPECT_EQ(body, expected) << toJson(body);
  EXPECT_TRUE(outcome && *outcome);
}

TEST_F(PodConditionWriterTest, TheLastAppliedTagsAndTheConditionGoInOnePatch) {
  const PodCondition observed{kTaggedConditionType, "True", "Synced", "old",
                              "2020-01-01T00:00:00Z"};
  const PodCondition synced = tagged("True", "Synced", "the ENI carries the pod's tags");
  writer.recordLastApplied(pod, R"({"Team":"B"})", "fedcba9876543210", &synced, &observed,
                           remember());
  ASSERT_EQ(kube.patches.size(), 1u);
  const auto& [ref, body] = kube.patches[0];
  EXPECT_EQ(ref.subresource, "status");
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Strategic);
  EXPECT_EQ(body, parse(R"({"metadata":{"annotations":{
      "eni-tagger.io/last-applied-tags":"{\"Team\":\"B\"}",
      "eni-tagger.io/last-applied-hash":"fedcba9876543210"}},
      "status":{"conditions":[{"type":"eni-tagger.io/tagged","status":"True","reason":"Synced",
      "message":"the ENI carries the pod's tags","lastTransitionTime":"2020-01-01T00:00:00Z"}]}})"))
      << toJson(body);
  EXPECT_TRUE(outcome && *outcome);
}

TEST_F(PodConditionWriterTest, ClearsTheLastAppliedTagsWithNulls) {
  writer.clearLastApplied(pod, nullptr);
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Merge);
  EXPECT_EQ(kube.patches[0].second, parse(R"({"metadata":{"annotations":{
      "eni-tagger.io/last-applied-tags":null,"eni-tagger.io/last-applied-hash":null}}})"));
}

TEST_F(PodConditionWriterTest, RemovesOneFinalizerConditionally) {
  pod.finalizers = {"example.com/a", "eni-tagger.io/finalizer", "example.com/b"};
  writer.removeFinalizer(pod, "eni-tagger.io/finalizer", remember());
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patchKinds[0].first, PatchType::Merge);
  EXPECT_EQ(kube.patches[0].first.subresource, "");
  EXPECT_EQ(kube.patches[0].second, parse(R"({"metadata":{
      "finalizers":["example.com/a","example.com/b"],"resourceVersion":"42"}})"));
}

TEST_F(PodConditionWriterTest, TheLastFinalizerLeavesAnEmptyList) {
  pod.finalizers = {"eni-tagger.io/finalizer"};
  writer.removeFinalizer(pod, "eni-tagger.io/finalizer", nullptr);
  ASSERT_EQ(kube.patches.size(), 1u);
  EXPECT_EQ(kube.patches[0].second,
            parse(R"({"metadata":{"finalizers":[],"resourceVersion":"42"}})"));
}

TEST_F(PodConditionWriterTest, AFinalizerThePodDoesNotHoldSendsNothing) {
  pod.finalizers = {"example.com/a"};
  writer.removeFinalizer(pod, "eni-tagger.io/finalizer", remember());
  EXPECT_TRUE(kube.patches.empty());
  ASSERT_TRUE(outcome.has_value());
  EXPECT_TRUE(*outcome);
}

TEST_F(PodConditionWriterTest, ErrorsReachTheCaller) {
  kube.patchAnswer = [](const ObjectRef&, const Json::Value&) -> Result<Json::Value> {
    return fail(ErrorCode::Conflict, "the object has been modified");
  };
  pod.finalizers = {"eni-tagger.io/finalizer"};
  writer.removeFinalizer(pod, "eni-tagger.io/finalizer", remember());
  ASSERT_TRUE(outcome.has_value());
  ASSERT_FALSE(*outcome);
  EXPECT_EQ(outcome->error().code, ErrorCode::Conflict);
  EXPECT_EQ(writer.inFlight(), 0u);
}

TEST(PodDecode, ConditionsAreTyped) {
  auto object = parseJson(R"({"metadata":{"name":"web","namespace":"team-a"},"status":{
      "conditions":[{"type":"Ready","status":"True"},
                    {"type":"eni-tagger.io/tagged","status":"False","reason":"TaggingFailed",
                     "message":"refused","lastTransitionTime":"2020-01-01T00:00:00Z"},
                    {"status":"True"}]}})");
  ASSERT_TRUE(object);
  auto pod = decodePod(*object);
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->conditions.size(), 2u) << "a condition without a type is skipped";
  const PodCondition* c = pod->condition(kTaggedConditionType);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(*c, (PodCondition{kTaggedConditionType, "False", "TaggingFailed", "refused",
                              "2020-01-01T00:00:00Z"}));
  EXPECT_EQ(pod->condition("Missing"), nullptr);
}

}  // namespace
}  // namespace eni
