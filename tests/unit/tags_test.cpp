#include "agent/eni/tags.h"

#include <gtest/gtest.h>

#include "agent/base/json.h"

namespace eni {
namespace {

TEST(TagHash, MatchesVectorsComputedWithPythonHashlib) {
  // hashlib.sha256("".join(f"{k}={v}," for k in sorted(tags)).encode()).hexdigest()[:16]
  EXPECT_EQ(tagHash({{"Team", "Platform"}, {"CostCenter", "1234"}}), "adee2f3e0055a9f5");
  EXPECT_EQ(tagHash({{"Team", "Platform"}, {"Cost", "1000"}}), "4be2f8fb4fbdee2e");
  EXPECT_EQ(tagHash({}), "e3b0c44298fc1c14");
  EXPECT_EQ(tagHash({{"a", ""}, {"b", "x=y,z"}}), "8d69c54780d56b6c");
  EXPECT_EQ(tagHash({{"acme:Team", "Dev"}}), "72fca93f7da8bd4c");
}

// The last-applied record is written without a Json::Value tree: exactly what toJson() writes for
// the same object, so a pod recorded by an earlier agent is not written again.
TEST(TagsToJson, WritesExactlyWhatJsoncppWrites) {
  const std::vector<TagSet> sets = {
      {},
      {{"Team", "Platform"}},
      {{"q\"uote", "back\\slash"}, {"ctl", "\b\f\n\r\t\x01\x1f\x7f"}, {"<&>", "/"}},
      {{"caf\xc3\xa9", "\xe2\x80\xa8"}, {"", ""}, {"Z", "\xff not utf-8"}}};
  for (const auto& tags : sets) {
    const std::string text = tagsToJson(tags);
    auto parsed = parseJson(text);
    ASSERT_TRUE(parsed) << text;
    EXPECT_EQ(toJson(*parsed), text);
    TagSet back;
    for (auto it = parsed->begin(); it != parsed->end(); ++it) back[it.name()] = it->asString();
    EXPECT_EQ(back, tags);
  }
}

TEST(TagAnnotation, JsonAndPairFormsGiveTheSameTags) {
  const TagSet want{{"Team", "Platform"}, {"CostCenter", "1234"}};
  EXPECT_EQ(parseTagAnnotation(R"({"Team":"Platform","CostCenter":"1234"})").value(), want);
  EXPECT_EQ(parseTagAnnotation("Team=Platform,CostCenter=1234").value(), want);
  EXPECT_EQ(parseTagAnnotation("  Team = Platform ,  CostCenter=1234 \n").value(), want);
  EXPECT_EQ(parseTagAnnotation(" {\"Team\" : \"Platform\", \"CostCenter\":\"1234\"} ").value(),
            want);
  EXPECT_EQ(parseTagAnnotation("Expr=a=b").value(), (TagSet{{"Expr", "a=b"}}));
  EXPECT_EQ(parseTagAnnotation("Empty=").value(), (TagSet{{"Empty", ""}}));
  EXPECT_TRUE(parseTagAnnotation("").value().empty());
  EXPECT_TRUE(parseTagAnnotation("{}").value().empty());
}

TEST(TagAnnotation, Namespaces) {
  EXPECT_EQ(parseTagAnnotation("Team=Dev", TagNamespace{"acme"}, "shop").value(),
            (TagSet{{"acme:Team", "Dev"}}));
  EXPECT_EQ(parseTagAnnotation("Team=Dev", TagNamespace{"pod-namespace"}, "shop").value(),
            (TagSet{{"shop:Team", "Dev"}}));
  // k8s-eni-tagger's --tag-namespace=enable is the pod's namespace, not a literal "enable:".
  EXPECT_EQ(parseTagAnnotation("Team=Dev", TagNamespace{"enable"}, "shop").value(),
            (TagSet{{"shop:Team", "Dev"}}));
  // The prefix counts towards the key limit.
  auto tooLong = parseTagAnnotation(std::string(125, 'k') + "=v", TagNamespace{"acme"}, "");
  ASSERT_FALSE(tooLong);
  EXPECT_NE(tooLong.error().message.find("127"), std::string::npos);
  EXPECT_FALSE(parseTagAnnotation("Team=Dev", TagNamespace{"aws"}, ""));
}

struct Bad {
  std::string annotation;
  std::string mustMention;
};
void PrintTo(const Bad& b, std::ostream* os) { *os << b.annotation.substr(0, 40); }

class TagAnnotationRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(TagAnnotationRejects, WithTheReason) {
  auto r = parseTagAnnotation(GetParam().annotation);
  ASSERT_FALSE(r) << GetParam().annotation;
  EXPECT_EQ(r.error().code, ErrorCode::Invalid);
  EXPECT_NE(r.error().message.find(GetParam().mustMention), std::string::npos) << r.error().message;
}

std::string manyTags(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Table, TagAnnotationRejects,
    ::testing::Values(
        Bad{"{", "malformed JSON"}, Bad{R"({"Team":"Platform")", "malformed JSON"},
        Bad{R"({"Team":1234})", "must be a JSON string"},
        Bad{R"({"Team":null})", "must be a JSON string"},
        Bad{R"({"Team":{"a":"b"}})", "must be a JSON string"},
        Bad{R"(["Team","Platform"])", "must be an object"},
        Bad{R"({"Team":"a","Team":"b"})", "duplicate"}, Bad{"Team=a,Team=b", "appears twice"},
        Bad{"Team", "is not Key=Value"}, Bad{"Team=a,,Cost=1", "empty entry"},
        Bad{"Team=a,", "empty entry"}, Bad{",", "empty entry"}, Bad{"=value", "key is empty"},
        Bad{R"({"":"v"})", "key is empty"}, Bad{manyTags(51), "51 tags; the limit is 49"},
        Bad{manyTags(50), "50 tags; the limit is 49 (EC2 allows 50 per ENI"},
        Bad{std::string(128, 'k') + "=v", "the limit is 127"},
        Bad{"k=" + std::string(256, 'v'), "the limit is 255"},
        Bad{"Team=Plat#form", "contains \"#\""}, Bad{"Te!am=x", "contains \"!\""},
        Bad{"Team=a*b", "contains \"*\""}, Bad{R"({"Team":"tab\there"})", "contains"},
        Bad{"Team=caf\xc3\xa9", "contains"}, Bad{"Team=semi;colon", "contains \";\""},
        Bad{"aws:cloudformation=x", "reserved prefix aws:"}, Bad{"AWS:x=y", "reserved prefix aws:"},
        Bad{"kubernetes.io/cluster/prod=owned", "reserved prefix kubernetes.io/cluster/"},
        Bad{"eni-tagger.io/hash=abc", "agent's own"},
        Bad{std::string(10001, ' '), "the limit is 10000"},
        Bad{"{" + std::string(10000, ' ') + "}", "the limit is 10000"},
        Bad{"Team=a\"b", "contains \"\"\""}, Bad{"Team=<x>", "contains \"<\""},
        Bad{std::string(R"({"a":"b"})") + "trailing", "malformed JSON"},
        // Strict JSON, as k8s-eni-tagger reads it: no trailing commas, comments or quirks.
        Bad{R"({"Team":"a",})", "malformed JSON"}, Bad{R"({"Team":"a" /* c */})", "malformed JSON"},
        Bad{"{\"Team\":\"a\" // c\n}", "malformed JSON"}, Bad{R"({'Team':'a'})", "malformed JSON"},
        // Keys that tell an ENI's owner: a pod must never set them.
        Bad{"eni-agent.io/managed-by=eni-agent", "prefix eni-agent.io/, reserved"},
        Bad{"ENI-AGENT.IO/instance-id=i-1", "prefix eni-agent.io/, reserved"},
        Bad{"Node=node-1", "reserved: the ENI manager reads it"},
        Bad{"NodeENI=ghost", "reserved: the ENI manager reads it"},
        Bad{"SubnetID=subnet-1", "reserved: the ENI manager reads it"},
        Bad{"Name=nodeeni-ghost-node-1-12345678", "form of the ENI manager's own ENI names"},
        Bad{"node.k8s.amazonaws.com/no_manage=true", "reserved for VPC CNI"},
        Bad{"node.k8s.amazonaws.com/instance_id=i-1", "reserved for VPC CNI"},
        Bad{"vpcresources.k8s.aws/trunk-eni-id=eni-1", "the VPC resource controller"},
        Bad{"eks:eni:owner=x", "reserved for EKS"},
        Bad{"kubernetes.io/cluster/managed-by=nodeeni-controller",
            "reserved prefix kubernetes.io/cluster/"}));

TEST(TagAnnotation, ANameThatIsNotTheEniManagersFormIsAnOrdinaryTag) {
  auto tags = parseTagAnnotation("Name=web-frontend,NodeRole=worker,Subnet=a");
  ASSERT_TRUE(tags) << tags.error().message;
  EXPECT_EQ(tags->size(), 3u);
  EXPECT_TRUE(parseTagAnnotation(manyTags(49))) << "49 tags and the hash fill EC2's 50";
}

TEST(TagDiff, Scenarios) {
  // Seed scenario 3: a changed value is one set, nothing deleted.
  auto d = diffTags({{"Team", "Platform"}, {"Cost", "1000"}}, {{"Team", "Dev"}, {"Cost", "1000"}});
  EXPECT_EQ(d.toSet, (TagSet{{"Team", "Dev"}}));
  EXPECT_TRUE(d.toDelete.empty());
  // Scenario 5: a removed key.
  d = diffTags({{"Team", "Platform"}, {"Cost", "1000"}}, {{"Team", "Platform"}});
  EXPECT_TRUE(d.toSet.empty());
  EXPECT_EQ(d.toDelete, std::vector<std::string>{"Cost"});
  // Scenario 6: no change.
  EXPECT_TRUE(diffTags({{"a", "1"}}, {{"a", "1"}}).empty());
  // Scenario 7: several changes.
  d = diffTags({{"Team", "Platform"}, {"Cost", "1000"}, {"Env", "Prod"}},
               {{"Team", "Dev"}, {"Env", "Dev"}, {"Owner", "Alice"}});
  EXPECT_EQ(d.toSet, (TagSet{{"Team", "Dev"}, {"Env", "Dev"}, {"Owner", "Alice"}}));
  EXPECT_EQ(d.toDelete, std::vector<std::string>{"Cost"});
}

}  // namespace
}  // namespace eni
