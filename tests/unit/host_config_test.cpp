// host.json: a valid file parses, and every kind of bad input is an Invalid error that names the
// field and says what to fix.
#include <gtest/gtest.h>

#include <cctype>

#include "agent/base/files.h"
#include "agent/host/host_config.h"

namespace eni {
namespace {

TEST(HostConfig, ParsesACompleteFile) {
  auto c = parseHostConfig(R"({
    "interfaces": [
      {"subnetID": "subnet-0abc", "securityGroupIDs": ["sg-1", "sg-2"], "deviceIndex": 1,
       "mtu": 9001, "description": "storage", "deleteOnTermination": false,
       "configureAddress": true, "policyRouting": true},
      {"subnetName": "private-b", "deviceIndex": 2}
    ],
    "tags": {"Team": "Platform", "CostCenter": "1234"}
  })");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->interfaces.size(), 2u);
  const auto& a = c->interfaces[0];
  EXPECT_EQ(a.subnetId, "subnet-0abc");
  EXPECT_EQ(a.securityGroupIds, (std::vector<std::string>{"sg-1", "sg-2"}));
  EXPECT_EQ(a.mtu, 9001u);
  EXPECT_FALSE(a.deleteOnTermination);
  EXPECT_TRUE(a.configureAddress);
  EXPECT_TRUE(a.policyRouting);
  EXPECT_EQ(a.key(), "host-1");
  const auto& b = c->interfaces[1];
  EXPECT_EQ(b.subnetName, "private-b");
  EXPECT_TRUE(b.deleteOnTermination);
  EXPECT_EQ(b.mtu, 0u);
  EXPECT_EQ(c->tags, (TagSet{{"CostCenter", "1234"}, {"Team", "Platform"}}));
}

TEST(HostConfig, EmptyObjectMeansNothingWanted) {
  auto c = parseHostConfig("{}");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->interfaces.empty());
  EXPECT_TRUE(c->tags.empty());
}

TEST(HostConfig, TagsAcceptThePairFormLikeTheAnnotation) {
  auto c = parseHostConfig(R"({"tags": "Team=Platform, CostCenter=1234"})");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->tags.at("Team"), "Platform");
}

struct BadCase {
  std::string name;
  std::string json;
  std::string expected;  // a part of the message
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class HostConfigBadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(HostConfigBadInput, NamesTheFieldAndTheFix) {
  auto c = parseHostConfig(GetParam().json);
  ASSERT_FALSE(c) << GetParam().name;
  EXPECT_EQ(c.error().code, ErrorCode::Invalid);
  EXPECT_NE(c.error().message.find(GetParam().expected), std::string::npos)
      << GetParam().name << ": " << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HostConfigBadInput,
    ::testing::Values(
        BadCase{"malformed", R"({"interfaces": [)", "malformed JSON"},
        BadCase{"not an object", R"([1])", "must be a JSON object"},
        BadCase{"unknown root key", R"({"interface": []})", "unknown key \"interface\""},
        BadCase{"unknown interface key with case hint",
                R"({"interfaces": [{"subnetId": "subnet-1"}]})",
                "interfaces[0]: unknown key \"subnetId\" (did you mean \"subnetID\"?)"},
        BadCase{"mtu too big",
                R"({"interfaces": [{"subnetID": "subnet-1"}, {"subnetID": "subnet-2",
                    "deviceIndex": 2, "mtu": 12000}]})",
                "interfaces[1].mtu: 12000 is outside 68-9001"},
        BadCase{"mtu too small", R"({"interfaces": [{"subnetID": "subnet-1", "mtu": 10}]})",
                "interfaces[0].mtu: 10 is outside 68-9001"},
        BadCase{"mtu as string", R"({"interfaces": [{"subnetID": "subnet-1", "mtu": "9001"}]})",
                "interfaces[0].mtu: must be a whole number, not the string \"9001\""},
        BadCase{"no subnet", R"({"interfaces": [{"deviceIndex": 1}]})",
                "interfaces[0]: no subnet; set subnetID"},
        BadCase{"both subnets", R"({"interfaces": [{"subnetID": "subnet-1", "subnetName": "a"}]})",
                "set subnetID or subnetName, not both"},
        BadCase{"subnet id shape", R"({"interfaces": [{"subnetID": "sub-1"}]})",
                "interfaces[0].subnetID: \"sub-1\" is not a subnet ID"},
        BadCase{"device index 0", R"({"interfaces": [{"subnetID": "subnet-1", "deviceIndex": 0}]})",
                "interfaces[0].deviceIndex: 0 is below 1"},
        BadCase{"duplicate device index",
                R"({"interfaces": [{"subnetID": "subnet-1"}, {"subnetID": "subnet-2"}]})",
                "interfaces[1].deviceIndex: 1 is already used by interfaces[0]"},
        BadCase{"security group shape",
                R"({"interfaces": [{"subnetID": "subnet-1", "securityGroupIDs": ["default"]}]})",
                "interfaces[0].securityGroupIDs[0]: \"default\" is not a security group ID"},
        BadCase{"security groups not a list",
                R"({"interfaces": [{"subnetID": "subnet-1", "securityGroupIDs": "sg-1"}]})",
                "interfaces[0].securityGroupIDs: must be a list"},
        BadCase{"bool as string",
                R"({"interfaces": [{"subnetID": "subnet-1", "policyRouting": "yes"}]})",
                "interfaces[0].policyRouting: must be true or false"},
        BadCase{"interfaces not a list", R"({"interfaces": {}})",
                "interfaces: must be a list of objects"},
        BadCase{"long description",
                (std::string(R"({"interfaces": [{"subnetID": "subnet-1", "description": ")") +
                 std::string(300, 'x') + R"("}]})"),
                "interfaces[0].description: 300 characters; the limit is 255"},
        BadCase{"reserved tag prefix", R"({"tags": {"aws:owner": "me"}})", "tags: "},
        BadCase{"tag value not a string", R"({"tags": {"Team": 1}})",
                "tags: the value of tag \"Team\" must be a JSON string"},
        BadCase{"bad tag characters", R"({"tags": {"Team": "a|b"}})", "tags: "},
        BadCase{"hash tag key", R"({"tags": {"eni-tagger.io/hash": "x"}})", "tags: "},
        BadCase{"tags wrong type", R"({"tags": 5})", "tags: must be an object of strings"},
        BadCase{"duplicate key", R"({"tags": {}, "tags": {}})", "Duplicate key"}),
    [](const ::testing::TestParamInfo<BadCase>& param) {
      std::string name;
      for (char c : param.param.name) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

TEST(HostConfig, ReportsEveryProblemAtOnce) {
  auto c = parseHostConfig(
      R"({"interfaces": [{"subnetID": "subnet-1", "mtu": 1}, {"deviceIndex": 2}], "x": 1})");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("interfaces[0].mtu"), std::string::npos);
  EXPECT_NE(c.error().message.find("interfaces[1]: no subnet"), std::string::npos);
  EXPECT_NE(c.error().message.find("unknown key \"x\""), std::string::npos);
}

TEST(HostConfig, LoadNamesTheFile) {
  auto missing = loadHostConfig("/nonexistent/host.json");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/host.json"), std::string::npos);
}

TEST(HostConfig, TheShippedExampleIsValid) {
  auto c = loadHostConfig(std::string(ENI_SOURCE_DIR) + "/systemd/host.json.example");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_FALSE(c->interfaces.empty());
  EXPECT_FALSE(c->tags.empty());
}

}  // namespace
}  // namespace eni
