// EC2 XML decoding, with responses in the shape the EC2 API reference documents.
#include "ec2/ec2_xml.h"

#include <gtest/gtest.h>

namespace eni {
namespace {

// From the EC2 API reference, DescribeNetworkInterfaces "Example response" (trimmed).
const char* kDescribeEnis =
    R"(<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>fc45294c-006b-457b-bab9-012f5b3b0e40</requestId>
  <networkInterfaceSet>
    <item>
      <networkInterfaceId>eni-0f7db1b59b2eb1d6c</networkInterfaceId>
      <subnetId>subnet-c8a3b8a9</subnetId>
      <vpcId>vpc-d3a3b8b2</vpcId>
      <availabilityZone>us-east-1b</availabilityZone>
      <description/>
      <ownerId>123456789012</ownerId>
      <requesterManaged>false</requesterManaged>
      <status>in-use</status>
      <macAddress>0e:e0:11:56:61:41</macAddress>
      <privateIpAddress>10.0.0.21</privateIpAddress>
      <sourceDestCheck>true</sourceDestCheck>
      <groupSet>
        <item><groupId>sg-0a1b2c3d</groupId><groupName>default</groupName></item>
      </groupSet>
      <attachment>
        <attachmentId>eni-attach-0f1e2d3c4b5a69780</attachmentId>
        <instanceId>i-1234567890abcdef0</instanceId>
        <instanceOwnerId>123456789012</instanceOwnerId>
        <deviceIndex>1</deviceIndex>
        <status>attached</status>
        <attachTime>2026-11-20T10:00:00.000Z</attachTime>
        <deleteOnTermination>true</deleteOnTermination>
      </attachment>
      <tagSet>
        <item><key>eni-tagger.io/hash</key><value>0123456789abcdef</value></item>
        <item><key>Team</key><value>Platform</value></item>
      </tagSet>
      <privateIpAddressesSet>
        <item><privateIpAddress>10.0.0.21</privateIpAddress><primary>true</primary></item>
        <item><privateIpAddress>10.0.0.22</privateIpAddress><primary>false</primary></item>
      </privateIpAddressesSet>
      <ipv4PrefixSet><item><ipv4Prefix>10.0.0.48/28</ipv4Prefix></item></ipv4PrefixSet>
      <ipv6AddressesSet/>
      <interfaceType>interface</interfaceType>
    </item>
    <item>
      <networkInterfaceId>eni-0a2b3c4d5e6f70819</networkInterfaceId>
      <subnetId>subnet-c8a3b8a9</subnetId>
      <status>available</status>
      <macAddress>0e:e0:11:56:61:42</macAddress>
      <tagSet/>
    </item>
  </networkInterfaceSet>
  <nextToken>AAEAAQ==</nextToken>
</DescribeNetworkInterfacesResponse>)";

TEST(Ec2Xml, DescribeNetworkInterfaces) {
  auto page = decodeDescribeNetworkInterfaces(kDescribeEnis);
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->interfaces.size(), 2u);
  EXPECT_EQ(page->nextToken, "AAEAAQ==");
  const auto& eni = page->interfaces[0];
  EXPECT_EQ(eni.id, "eni-0f7db1b59b2eb1d6c");
  EXPECT_EQ(eni.subnetId, "subnet-c8a3b8a9");
  EXPECT_EQ(eni.vpcId, "vpc-d3a3b8b2");
  EXPECT_EQ(eni.macAddress, "0e:e0:11:56:61:41");
  EXPECT_EQ(eni.status, "in-use");
  EXPECT_EQ(eni.interfaceType, "interface");
  EXPECT_EQ(eni.privateIpAddresses, (std::vector<std::string>{"10.0.0.21", "10.0.0.22"}));
  EXPECT_EQ(eni.ipv4Prefixes, std::vector<std::string>{"10.0.0.48/28"});
  EXPECT_EQ(eni.securityGroupIds, std::vector<std::string>{"sg-0a1b2c3d"});
  ASSERT_TRUE(eni.attachment);
  EXPECT_EQ(eni.attachment->attachmentId, "eni-attach-0f1e2d3c4b5a69780");
  EXPECT_EQ(eni.attachment->instanceId, "i-1234567890abcdef0");
  EXPECT_EQ(eni.attachment->deviceIndex, 1);
  EXPECT_TRUE(eni.attachment->deleteOnTermination);
  EXPECT_EQ(eni.tags,
            (std::vector<Tag>{{"eni-tagger.io/hash", "0123456789abcdef"}, {"Team", "Platform"}}));
  EXPECT_FALSE(page->interfaces[1].attachment);
  EXPECT_TRUE(page->interfaces[1].tags.empty());
  EXPECT_EQ(page->interfaces[1].interfaceType, "") << "absent reads as empty";
}

TEST(Ec2Xml, CreateAttachAndReturn) {
  auto created = decodeCreateNetworkInterface(
      R"(<CreateNetworkInterfaceResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>8dbe591e-5a22-48cb-b948-dd0aadd55adf</requestId>
    <networkInterface><networkInterfaceId>eni-cfca76a6</networkInterfaceId><subnetId>subnet-b2a249da</subnetId>
    <vpcId>vpc-c31dafaa</vpcId><status>pending</status><macAddress>02:74:b0:72:79:61</macAddress>
    <privateIpAddress>10.0.2.157</privateIpAddress><groupSet><item><groupId>sg-1</groupId></item></groupSet>
    <tagSet><item><key>Name</key><value>nodeeni-x</value></item></tagSet></networkInterface>
    </CreateNetworkInterfaceResponse>)");
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->id, "eni-cfca76a6");
  EXPECT_EQ(created->macAddress, "02:74:b0:72:79:61");
  EXPECT_EQ(created->tags, (std::vector<Tag>{{"Name", "nodeeni-x"}}));
  auto attached = decodeAttachNetworkInterface(
      R"(<AttachNetworkInterfaceResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><attachmentId>eni-attach-d94b09b0</attachmentId></AttachNetworkInterfaceResponse>)");
  ASSERT_TRUE(attached);
  EXPECT_EQ(*attached, "eni-attach-d94b09b0");
  EXPECT_TRUE(decodeReturnTrue(
      "CreateTags",
      R"(<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><return>true</return></CreateTagsResponse>)"));
  EXPECT_FALSE(decodeReturnTrue("DeleteTags",
                                "<DeleteTagsResponse><return>false</return></DeleteTagsResponse>"));
  EXPECT_FALSE(decodeCreateNetworkInterface("<CreateNetworkInterfaceResponse/>"));
}

TEST(Ec2Xml, SubnetsGroupsInstances) {
  auto subnets = decodeDescribeSubnets(
      R"(<DescribeSubnetsResponse><subnetSet><item><subnetId>subnet-9d4a7b6c</subnetId>
    <vpcId>vpc-1a2b3c4d</vpcId><cidrBlock>10.0.1.0/24</cidrBlock><availabilityZone>us-east-1c</availabilityZone>
    <tagSet><item><key>Name</key><value>private-a</value></item></tagSet></item></subnetSet></DescribeSubnetsResponse>)");
  ASSERT_TRUE(subnets);
  ASSERT_EQ(subnets->size(), 1u);
  EXPECT_EQ((*subnets)[0].cidrBlock, "10.0.1.0/24");
  EXPECT_EQ((*subnets)[0].tags[0].value, "private-a");
  auto groups =
      decodeDescribeSecurityGroups(R"(<DescribeSecurityGroupsResponse><securityGroupInfo><item>
    <ownerId>123456789012</ownerId><groupId>sg-1a2b3c4d</groupId><groupName>WebServers</groupName><vpcId>vpc-1</vpcId>
    </item></securityGroupInfo></DescribeSecurityGroupsResponse>)");
  ASSERT_TRUE(groups);
  EXPECT_EQ((*groups)[0].name, "WebServers");
  auto instances = decodeDescribeInstances(
      R"(<DescribeInstancesResponse><reservationSet><item><instancesSet><item>
    <instanceId>i-1234567890abcdef0</instanceId><vpcId>vpc-1</vpcId><placement><availabilityZone>us-east-1a</availabilityZone></placement>
    <networkInterfaceSet>
      <item><networkInterfaceId>eni-a</networkInterfaceId><attachment><deviceIndex>0</deviceIndex></attachment></item>
      <item><networkInterfaceId>eni-b</networkInterfaceId><attachment><deviceIndex>2</deviceIndex></attachment></item>
    </networkInterfaceSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>)");
  ASSERT_TRUE(instances);
  ASSERT_EQ(instances->size(), 1u);
  EXPECT_EQ((*instances)[0].availabilityZone, "us-east-1a");
  ASSERT_EQ((*instances)[0].networkInterfaces.size(), 2u);
  EXPECT_EQ((*instances)[0].networkInterfaces[1].attachment->deviceIndex, 2);
}

struct ErrorCase {
  long status;
  std::string body;
  ErrorCode code;
  std::string awsCode;
  std::string requestId;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.status << " " << c.awsCode; }

class Ec2ErrorDecoding : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(Ec2ErrorDecoding, TypedWithCodeAndRequestId) {
  const auto& c = GetParam();
  const Error e = decodeEc2Error("Action", c.status, c.body);
  EXPECT_EQ(e.code, c.code) << e.message;
  EXPECT_EQ(e.awsCode, c.awsCode);
  EXPECT_EQ(e.requestId, c.requestId);
  EXPECT_EQ(e.httpStatus, c.status);
  EXPECT_EQ(e.message.rfind("Action: ", 0), 0u) << e.message;
}

std::string ec2Error(const std::string& code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>" + code +
         "</Code><Message>msg</Message></Error></"
         "Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>";
}

INSTANTIATE_TEST_SUITE_P(
    Table, Ec2ErrorDecoding,
    ::testing::Values(
        ErrorCase{400, ec2Error("InvalidNetworkInterfaceID.NotFound"), ErrorCode::NotFound,
                  "InvalidNetworkInterfaceID.NotFound", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{400, ec2Error("InvalidSubnetID.NotFound"), ErrorCode::NotFound,
                  "InvalidSubnetID.NotFound", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{503, ec2Error("RequestLimitExceeded"), ErrorCode::Throttled,
                  "RequestLimitExceeded", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{400, ec2Error("Throttling"), ErrorCode::Throttled, "Throttling",
                  "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{403, ec2Error("UnauthorizedOperation"), ErrorCode::Permission,
                  "UnauthorizedOperation", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{401,
                  "<ErrorResponse><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able "
                  "to validate</Message>"
                  "</Error></Errors><RequestID>a-1</RequestID></ErrorResponse>",
                  ErrorCode::Permission, "AuthFailure", "a-1"},
        ErrorCase{400, ec2Error("InvalidParameterValue"), ErrorCode::Invalid,
                  "InvalidParameterValue", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{400, ec2Error("InvalidParameterCombination"), ErrorCode::Invalid,
                  "InvalidParameterCombination", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{400, ec2Error("InvalidNetworkInterfaceId.Malformed"), ErrorCode::Invalid,
                  "InvalidNetworkInterfaceId.Malformed", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{400, ec2Error("InvalidNetworkInterface.InUse"), ErrorCode::Conflict,
                  "InvalidNetworkInterface.InUse", "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{500, ec2Error("InternalError"), ErrorCode::Transient, "InternalError",
                  "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{503, ec2Error("Unavailable"), ErrorCode::Transient, "Unavailable",
                  "ea966190-f9aa-478e-9ede-example"},
        ErrorCase{400,
                  "<ErrorResponse "
                  "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
                  "<Code>InvalidIdentityToken</Code><Message>bad</Message></Error><RequestId>s-1</"
                  "RequestId></ErrorResponse>",
                  ErrorCode::Invalid, "InvalidIdentityToken", "s-1"}));

TEST(Ec2Xml, NonXmlBodiesAreClearErrorsNotCrashes) {
  const std::string html =
      "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>";
  const Error e = decodeEc2Error("DescribeNetworkInterfaces", 500, html);
  EXPECT_EQ(e.code, ErrorCode::Transient);
  EXPECT_NE(e.message.find("not an EC2 error"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("HTTP 500"), std::string::npos);
  EXPECT_EQ(decodeEc2Error("X", 400, "").code, ErrorCode::Internal);
  EXPECT_EQ(decodeEc2Error("X", 400, "\xff\xfe garbage").code, ErrorCode::Internal);
  auto notXml = decodeDescribeNetworkInterfaces(html);
  ASSERT_FALSE(notXml);
  EXPECT_NE(notXml.error().message.find("not XML"), std::string::npos) << notXml.error().message;
  EXPECT_FALSE(decodeDescribeSubnets(""));
}

// A 2xx answer that is not the action's own (a proxy's page, another API, a truncated body) must
// never read as success or as an empty list: an empty Describe makes the ENI manager create and
// attach a second ENI. Each decoder refuses it as Transient, so the client retries it.
struct WrongAnswer {
  std::string name;
  std::string body;
};

const std::vector<WrongAnswer>& wrongAnswers() {
  static const std::vector<WrongAnswer> all{
      {"foo", "<Foo/>"},
      {"html",
       "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
       "</body></html>"},
      {"html-doctype", "<!doctype html>\n<html lang=en>\n<title>502 Bad Gateway</title>"},
      {"empty", ""},
      {"text", "upstream connect error or disconnect/reset before headers"},
      {"other-action",
       "<DescribeAddressesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
       "<requestId>r</requestId><addressesSet/><return>true</return></DescribeAddressesResponse>"},
      {"error-envelope",
       "<Response><Errors><Error><Code>InternalError</Code></Error></Errors>"
       "</Response>"},
  };
  return all;
}

void expectRefused(const Error& e, const std::string& expectedRoot, const std::string& name) {
  EXPECT_EQ(e.code, ErrorCode::Transient) << name << ": " << e.message;
  EXPECT_TRUE(e.message.find(expectedRoot) != std::string::npos ||
              e.message.find("not XML") != std::string::npos)
      << name << ": " << e.message;
}

TEST(Ec2Xml, EveryDecoderRefusesAnAnswerThatIsNotItsActionsAsTransient) {
  for (const auto& w : wrongAnswers()) {
    const std::string_view b = w.body;
    auto enis = decodeDescribeNetworkInterfaces(b);
    ASSERT_FALSE(enis) << w.name;
    expectRefused(enis.error(), "DescribeNetworkInterfacesResponse", w.name);
    auto created = decodeCreateNetworkInterface(b);
    ASSERT_FALSE(created) << w.name;
    expectRefused(created.error(), "CreateNetworkInterfaceResponse", w.name);
    auto attached = decodeAttachNetworkInterface(b);
    ASSERT_FALSE(attached) << w.name;
    expectRefused(attached.error(), "AttachNetworkInterfaceResponse", w.name);
    for (const char* action : {"CreateTags", "DeleteTags", "DetachNetworkInterface",
                               "DeleteNetworkInterface", "ModifyNetworkInterfaceAttribute"}) {
      auto r = decodeReturnTrue(action, b);
      ASSERT_FALSE(r) << w.name << " as " << action;
      expectRefused(r.error(), std::string(action) + "Response", w.name);
    }
    auto subnets = decodeDescribeSubnets(b);
    ASSERT_FALSE(subnets) << w.name;
    expectRefused(subnets.error(), "DescribeSubnetsResponse", w.name);
    auto groups = decodeDescribeSecurityGroups(b);
    ASSERT_FALSE(groups) << w.name;
    expectRefused(groups.error(), "DescribeSecurityGroupsResponse", w.name);
    auto instances = decodeDescribeInstances(b);
    ASSERT_FALSE(instances) << w.name;
    expectRefused(instances.error(), "DescribeInstancesResponse", w.name);
    auto sts = decodeAssumeRoleWithWebIdentity(b);
    ASSERT_FALSE(sts) << w.name;
    expectRefused(sts.error(), "AssumeRoleWithWebIdentityResponse", w.name);
    auto generic = checkEc2Response("CreateVpc", b);
    ASSERT_FALSE(generic) << w.name;
    expectRefused(generic.error(), "CreateVpcResponse", w.name);
  }
}

TEST(Ec2Xml, TheRefusalNamesTheRootItGotAndShowsTheBody) {
  auto r = decodeReturnTrue("CreateTags", "<Foo/>");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a CreateTagsResponse"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("<Foo>"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("AWS_ENDPOINT_URL"), std::string::npos) << r.error().message;
  // STS answers may carry credentials: the body is never quoted.
  auto sts = decodeAssumeRoleWithWebIdentity(
      "<Foo><SecretAccessKey>never-quote-this-secret</SecretAccessKey></Foo>");
  ASSERT_FALSE(sts);
  EXPECT_EQ(sts.error().message.find("never-quote-this-secret"), std::string::npos)
      << sts.error().message;
}

TEST(Ec2Xml, ADescribeWithoutItsListIsNotAnEmptyAnswer) {
  for (const auto& [action, body] : std::vector<std::pair<std::string, std::string>>{
           {"DescribeNetworkInterfaces",
            "<DescribeNetworkInterfacesResponse><requestId>r</requestId>"
            "</DescribeNetworkInterfacesResponse>"},
           {"DescribeSubnets", "<DescribeSubnetsResponse/>"},
           {"DescribeSecurityGroups", "<DescribeSecurityGroupsResponse/>"},
           {"DescribeInstances", "<DescribeInstancesResponse/>"}}) {
    Result<void> r;
    if (action == "DescribeNetworkInterfaces") {
      auto d = decodeDescribeNetworkInterfaces(body);
      if (!d) r = fail(d.error());
    } else if (action == "DescribeSubnets") {
      auto d = decodeDescribeSubnets(body);
      if (!d) r = fail(d.error());
    } else if (action == "DescribeSecurityGroups") {
      auto d = decodeDescribeSecurityGroups(body);
      if (!d) r = fail(d.error());
    } else {
      auto d = decodeDescribeInstances(body);
      if (!d) r = fail(d.error());
    }
    ASSERT_FALSE(r) << action;
    EXPECT_EQ(r.error().code, ErrorCode::Transient) << action;
  }
  // Empty lists, as EC2 and moto send them, are fine.
  auto none = decodeDescribeNetworkInterfaces(
      "<DescribeNetworkInterfacesResponse><networkInterfaceSet/></"
      "DescribeNetworkInterfacesResponse>");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->interfaces.empty());
  EXPECT_TRUE(
      decodeDescribeInstances("<DescribeInstancesResponse><reservationSet/>"
                              "</DescribeInstancesResponse>"));
}

TEST(Ec2Xml, ReturnMustNotBeFalseAndMayBeMissingAsMotoSendsIt) {
  EXPECT_TRUE(decodeReturnTrue("CreateTags",
                               R"(<?xml version="1.0" encoding="utf-8"?>
<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><requestId>request-id</requestId></CreateTagsResponse>)"));
  EXPECT_TRUE(decodeReturnTrue(
      "CreateTags",
      R"(<ec2:CreateTagsResponse xmlns:ec2="http://ec2.amazonaws.com/doc/2016-11-15/"><ec2:return>true</ec2:return></ec2:CreateTagsResponse>)"))
      << "a namespace prefix is still the same element";
  auto no = decodeReturnTrue("DeleteTags",
                             "<DeleteTagsResponse><return>false</return></DeleteTagsResponse>");
  ASSERT_FALSE(no);
  EXPECT_EQ(no.error().code, ErrorCode::Transient);
  EXPECT_NE(no.error().message.find("<return>false</return>"), std::string::npos);
  EXPECT_FALSE(decodeReturnTrue("CreateTags",
                                "<DeleteTagsResponse><return>true</return>"
                                "</DeleteTagsResponse>"))
      << "another action's answer, even a true one";
  EXPECT_TRUE(checkEc2Response("CreateVpc", "<CreateVpcResponse><vpc/></CreateVpcResponse>"));
}

TEST(Ec2Xml, StsCredentialsAndTimes) {
  auto creds = decodeAssumeRoleWithWebIdentity(
      R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
    <AssumeRoleWithWebIdentityResult><Credentials><SessionToken>tok</SessionToken><SecretAccessKey>sec</SecretAccessKey>
    <Expiration>2026-11-23T12:00:00Z</Expiration><AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials>
    </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>)");
  ASSERT_TRUE(creds);
  EXPECT_EQ(creds->accessKeyId, "ASIAEXAMPLE");
  EXPECT_EQ(creds->source, "web-identity");
  ASSERT_TRUE(creds->expiration);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*creds->expiration), 1795435200);
  EXPECT_TRUE(parseIso8601("2026-11-23T12:00:00.123Z"));
  EXPECT_FALSE(parseIso8601("yesterday"));
}

}  // namespace
}  // namespace eni
