// The AWS layer against moto_server (through the fault proxy), the IMDS emulator and moto's STS.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "agent/base/json.h"
#include "agent/base/log.h"
#include "ec2/credentials.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"
#include "tests/support/static_credentials.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

using testing::TestStack;

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

/// Real sleeps, counted.
class CountingSleeper final : public Sleeper {
 public:
  void sleepFor(Duration d) override {
    ++sleeps;
    total += d;
    real_.sleepFor(d);
  }
  int sleeps = 0;
  Duration total{0};

 private:
  RealSleeper real_;
};

using testing::StaticCredentials;

Json::Value proxyStats() {
  return *parseJson(
      TestStack::get().controlHttp("GET", TestStack::get().ec2ProxyEndpoint + "/_proxy/stats"));
}
std::uint64_t proxyRequests(const std::string& action) {
  return proxyStats()["requests"].get(action, 0).asUInt64();
}
void proxyRules(const std::string& json) {
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/rules", json);
}

class Ec2ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
  }
  std::unique_ptr<CurlEc2Client> client(Ec2ClientConfig config = {}) {
    config.region = TestStack::get().region;
    config.endpoint = TestStack::get().ec2ProxyEndpoint;
    config.backoffBase = Duration(20);
    config.backoffCap = Duration(200);
    return std::make_unique<CurlEc2Client>(config, credentials_, clock_, sleeper_, 1);
  }
  NetworkInterface createEni(CurlEc2Client& ec2, const std::string& subnet,
                             std::vector<Tag> tags = {}) {
    CreateEniRequest request;
    request.subnetId = subnet;
    request.securityGroupIds = {TestStack::get().securityGroupId};
    request.description = "eni-agent integration test";
    request.clientToken = "token-" + std::to_string(++tokens_);
    request.tags = std::move(tags);
    auto eni = ec2.createNetworkInterface(request);
    EXPECT_TRUE(eni) << eni.error().describe();
    return eni.value_or(NetworkInterface{});
  }

  StaticCredentials credentials_{"AKIATESTING", "testing-secret"};
  SystemClock clock_;
  CountingSleeper sleeper_;
  int tokens_ = 0;
};

TEST_F(Ec2ClientTest, EveryActionAgainstMoto) {
  auto ec2 = client();
  const auto& stack = TestStack::get();

  auto eni = createEni(*ec2, stack.subnetB,
                       {{"eni-agent.io/managed-by", "eni-agent"}, {"Name", "it-every-action"}});
  ASSERT_FALSE(eni.id.empty());
  EXPECT_EQ(eni.subnetId, stack.subnetB);
  EXPECT_FALSE(eni.macAddress.empty());
  EXPECT_EQ(eni.securityGroupIds, std::vector<std::string>{stack.securityGroupId});

  auto byId = ec2->describeNetworkInterfaces({eni.id}, {});
  ASSERT_TRUE(byId) << byId.error().describe();
  ASSERT_EQ(byId->size(), 1u);
  EXPECT_EQ((*byId)[0].description, "eni-agent integration test");
  auto byTag = ec2->describeNetworkInterfaces({}, {{"tag:Name", {"it-every-action"}}});
  ASSERT_TRUE(byTag);
  ASSERT_EQ(byTag->size(), 1u);
  EXPECT_EQ((*byTag)[0].id, eni.id);

  auto second = createEni(*ec2, stack.subnetB);
  ASSERT_TRUE(ec2->createTags({eni.id, second.id}, {{"Team", "Platform"}, {"CostCenter", "1234"}}));
  auto tagged = ec2->describeNetworkInterfaces({eni.id, second.id}, {});
  ASSERT_TRUE(tagged);
  for (const auto& e : *tagged) {
    EXPECT_NE(std::find(e.tags.begin(), e.tags.end(), Tag{"Team", "Platform"}), e.tags.end())
        << e.id;
  }
  ASSERT_TRUE(ec2->deleteTags({eni.id}, {{"CostCenter", ""}}));
  auto afterDelete = ec2->describeNetworkInterfaces({eni.id}, {});
  ASSERT_TRUE(afterDelete);
  for (const auto& t : (*afterDelete)[0].tags) EXPECT_NE(t.key, "CostCenter");

  auto attachment = ec2->attachNetworkInterface(eni.id, stack.instanceId, 3);
  ASSERT_TRUE(attachment) << attachment.error().describe();
  ASSERT_TRUE(ec2->setDeleteOnTermination(eni.id, *attachment, true));
  auto instance = ec2->describeInstance(stack.instanceId);
  ASSERT_TRUE(instance) << instance.error().describe();
  bool found = false;
  for (const auto& n : instance->networkInterfaces) {
    if (n.id == eni.id) {
      found = true;
      ASSERT_TRUE(n.attachment);
      EXPECT_EQ(n.attachment->deviceIndex, 3);
    }
  }
  EXPECT_TRUE(found) << "the attached ENI shows in DescribeInstances with its device index";
  ASSERT_TRUE(ec2->detachNetworkInterface(*attachment, true));
  ASSERT_TRUE(ec2->deleteNetworkInterface(eni.id));
  ASSERT_TRUE(ec2->deleteNetworkInterface(second.id));
  auto gone = ec2->describeNetworkInterfaces({eni.id}, {});
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::NotFound);

  auto subnets = ec2->describeSubnets({}, {{"tag:Name", {"eni-agent-test-b"}}});
  ASSERT_TRUE(subnets);
  ASSERT_EQ(subnets->size(), 1u);
  EXPECT_EQ((*subnets)[0].id, stack.subnetB);
  EXPECT_EQ((*subnets)[0].cidrBlock, "10.0.2.0/24");
  auto byIdSubnet = ec2->describeSubnets({stack.subnetA}, {});
  ASSERT_TRUE(byIdSubnet);
  EXPECT_EQ((*byIdSubnet)[0].vpcId, stack.vpcId);
  auto groups = ec2->describeSecurityGroups(
      {}, {{"group-name", {"eni-agent-test"}}, {"vpc-id", {stack.vpcId}}});
  ASSERT_TRUE(groups);
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ((*groups)[0].id, stack.securityGroupId);

  const auto& c = ec2->counters();
  EXPECT_EQ(c.calls("CreateNetworkInterface", "success"), 2u);
  EXPECT_EQ(c.calls("DescribeNetworkInterfaces", "not_found"), 1u);
  EXPECT_EQ(c.attempts("DescribeNetworkInterfaces"), proxyRequests("DescribeNetworkInterfaces"));
  EXPECT_EQ(ec2->connectionsOpened(), 1) << "one connection, reused for every call";
}

TEST_F(Ec2ClientTest, UnknownEniIsNotFoundWithCodeAndRequestId) {
  auto ec2 = client();
  auto r = ec2->describeNetworkInterfaces({"eni-0000000000000dead"}, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::NotFound);
  EXPECT_EQ(r.error().awsCode, "InvalidNetworkInterfaceID.NotFound");
  EXPECT_FALSE(r.error().requestId.empty());
  EXPECT_EQ(proxyRequests("DescribeNetworkInterfaces"), 1u) << "NotFound is not retried";
  auto bad = ec2->attachNetworkInterface("eni-0000000000000dead", TestStack::get().instanceId, 5);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::NotFound);
}

TEST_F(Ec2ClientTest, PaginationFollowsNextTokenToTheEnd) {
  Ec2ClientConfig config;
  config.describePageSize = 5;
  auto ec2 = client(config);
  std::vector<std::string> created;
  for (int i = 0; i < 12; ++i) {
    created.push_back(createEni(*ec2, TestStack::get().subnetB, {{"pagination", "yes"}}).id);
  }
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
  auto all = ec2->describeNetworkInterfaces({}, {{"tag:pagination", {"yes"}}});
  ASSERT_TRUE(all) << all.error().describe();
  EXPECT_EQ(all->size(), 12u);
  EXPECT_EQ(proxyRequests("DescribeNetworkInterfaces"), 3u) << "12 ENIs in pages of 5";
  for (const auto& id : created) ASSERT_TRUE(ec2->deleteNetworkInterface(id));
}

TEST_F(Ec2ClientTest, ThrottlingIsRetriedWithBackoffAndSlowsTheBucket) {
  auto ec2 = client();
  auto eni = createEni(*ec2, TestStack::get().subnetB);
  proxyRules(R"([{"action":"CreateTags","fault":"throttle","count":2}])");
  const double rateBefore = ec2->rateLimiter().currentRate();
  ASSERT_TRUE(ec2->createTags({eni.id}, {{"k", "v"}}));
  EXPECT_EQ(ec2->counters().attempts("CreateTags"), 3u);
  EXPECT_EQ(proxyRequests("CreateTags"), 3u);
  EXPECT_EQ(ec2->counters().calls("CreateTags", "success"), 1u);
  EXPECT_EQ(ec2->counters().calls("CreateTags", "throttled"), 0u);
  EXPECT_LT(ec2->rateLimiter().currentRate(), rateBefore) << "throttling slowed the bucket";
  EXPECT_EQ(sleeper_.sleeps, 2) << "one backoff sleep before each retry";
  EXPECT_EQ(ec2->counters().durations()["CreateTags"].count, 3u)
      << "aws_api_duration_seconds observes each attempt";
  ASSERT_TRUE(ec2->deleteNetworkInterface(eni.id));
}

TEST_F(Ec2ClientTest, ValidationErrorsAreNeverRetried) {
  auto ec2 = client();
  proxyRules(R"([{"action":"CreateTags","fault":"invalid"}])");
  auto r = ec2->createTags({"eni-0123"}, {{"k", "v"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Invalid);
  EXPECT_EQ(r.error().awsCode, "InvalidParameterValue");
  EXPECT_EQ(ec2->counters().attempts("CreateTags"), 1u);
  EXPECT_EQ(proxyRequests("CreateTags"), 1u);
  EXPECT_EQ(sleeper_.sleeps, 0);
}

TEST_F(Ec2ClientTest, PersistentOutageStopsAfterTheBoundedAttempts) {
  Ec2ClientConfig config;
  config.maxAttempts = 4;
  auto ec2 = client(config);
  proxyRules(R"([{"action":"DescribeSubnets","fault":"unavailable"}])");
  auto r = ec2->describeSubnets({TestStack::get().subnetA}, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
  EXPECT_EQ(proxyRequests("DescribeSubnets"), 4u);
  EXPECT_EQ(ec2->counters().calls("DescribeSubnets", "transient"), 1u);
}

TEST_F(Ec2ClientTest, ConnectionResetIsRetried) {
  auto ec2 = client();
  proxyRules(R"([{"action":"DescribeSubnets","fault":"reset","count":1}])");
  auto r = ec2->describeSubnets({TestStack::get().subnetA}, {});
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(ec2->counters().attempts("DescribeSubnets"), 2u);
  EXPECT_EQ(proxyRequests("DescribeSubnets"), 2u);
  EXPECT_EQ(ec2->counters().durations()["DescribeSubnets"].count, 2u)
      << "a reset attempt is timed too";
}

TEST_F(Ec2ClientTest, TheBucketIsTakenOnEveryAttempt) {
  Ec2ClientConfig config;
  config.qps = 5;
  config.burst = 2;
  auto ec2 = client(config);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(ec2->describeSubnets({TestStack::get().subnetA}, {}));
  EXPECT_EQ(ec2->rateLimiter().waits(), 4u) << "a burst of 2, then every call waits for a token";
  proxyRules(R"([{"action":"DescribeSubnets","fault":"throttle","count":1}])");
  ASSERT_TRUE(ec2->describeSubnets({TestStack::get().subnetA}, {}));
  EXPECT_EQ(ec2->rateLimiter().waits(), 6u) << "the retry took a token too";
}

TEST_F(Ec2ClientTest, HtmlForAnUnknownFilterIsAClearError) {
  Ec2ClientConfig config;
  config.maxAttempts = 1;
  auto ec2 = client(config);
  auto r = ec2->describeNetworkInterfaces({}, {{"no-such-filter", {"x"}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not an EC2 error"), std::string::npos) << r.error().message;
}

// A 200 that is not the action's answer (the fault proxy's <Foo/> or a load balancer's HTML
// page) is never a success: it is retried like a 5xx, and a call that only ever gets such
// answers fails with a Transient error that says what came back.
TEST_F(Ec2ClientTest, A200ThatIsNotTheActionsAnswerIsRetriedNeverASuccess) {
  auto ec2 = client();
  auto eni = createEni(*ec2, TestStack::get().subnetB);
  for (const char* fault : {"bogus", "html200"}) {
    SCOPED_TRACE(fault);
    TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
    proxyRules(std::string(R"([{"action":"CreateTags","fault":")") + fault + R"(","count":1}])");
    auto once = client();
    ASSERT_TRUE(once->createTags({eni.id}, {{"k", fault}})) << "the retry got moto's answer";
    EXPECT_EQ(once->counters().attempts("CreateTags"), 2u);
    EXPECT_EQ(once->counters().calls("CreateTags", "success"), 1u);

    proxyRules(std::string(R"([{"action":"CreateTags","fault":")") + fault + R"("}])");
    auto always = client();
    auto r = always->createTags({eni.id}, {{"k", "never"}});
    ASSERT_FALSE(r) << "a lie is not a success";
    EXPECT_EQ(r.error().code, ErrorCode::Transient) << r.error().describe();
    EXPECT_NE(r.error().message.find("not a CreateTagsResponse"), std::string::npos)
        << r.error().message;
    EXPECT_EQ(always->counters().attempts("CreateTags"), 4u) << "retried like any Transient";
    EXPECT_EQ(always->counters().calls("CreateTags", "transient"), 1u);
  }
  // A Describe answered so is an error, never an empty list.
  proxyRules(R"([{"action":"DescribeNetworkInterfaces","fault":"bogus"}])");
  auto described = client()->describeNetworkInterfaces({eni.id}, {});
  ASSERT_FALSE(described) << described->size() << " ENIs out of <Foo/>";
  EXPECT_EQ(described.error().code, ErrorCode::Transient);
  TestStack::get().controlHttp("POST", TestStack::get().ec2ProxyEndpoint + "/_proxy/reset");
  auto tags = client()->describeNetworkInterfaces({eni.id}, {});
  ASSERT_TRUE(tags);
  ASSERT_EQ(tags->size(), 1u);
  EXPECT_EQ(tags->front().tags, (std::vector<Tag>{{"k", "html200"}})) << "only real answers wrote";
  ASSERT_TRUE(ec2->deleteNetworkInterface(eni.id));
}

// A 40 MiB answer, chunked (no Content-Length): the call fails with the cap's error after
// reading at most the cap, and the client's next call works.
TEST_F(Ec2ClientTest, A40MiBAnswerFailsWithTheCapErrorAndTheNextCallWorks) {
  Ec2ClientConfig config;
  config.maxAttempts = 2;
  auto ec2 = client(config);
  proxyRules(R"([{"action":"DescribeSubnets","fault":"huge","count":2}])");
  auto r = ec2->describeSubnets({TestStack::get().subnetA}, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
  EXPECT_NE(r.error().message.find("larger than the 8 MiB cap"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(proxyStats()["faults"].get("DescribeSubnets", 0).asInt(), 2);
  auto next = ec2->describeSubnets({TestStack::get().subnetA}, {});
  ASSERT_TRUE(next) << next.error().describe();
  EXPECT_EQ(next->size(), 1u);
}

TEST(Ec2Signatures, MotoChecksTheSignature) {
  const auto& stack = TestStack::get();
  SystemClock clock;
  RealSleeper sleeper;
  Ec2ClientConfig config;
  config.region = stack.region;
  config.endpoint = stack.motoAuthEndpoint;
  config.maxAttempts = 1;
  StaticCredentials right(stack.motoAuthAccessKeyId, stack.motoAuthSecretAccessKey);
  CurlEc2Client good(config, right, clock, sleeper);
  auto ok = good.describeNetworkInterfaces({}, {});
  EXPECT_TRUE(ok) << ok.error().describe();

  StaticCredentials wrong(stack.motoAuthAccessKeyId,
                          "not-the-secret-" + stack.motoAuthSecretAccessKey);
  CurlEc2Client bad(config, wrong, clock, sleeper);
  auto refused = bad.describeNetworkInterfaces({}, {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::Permission) << refused.error().describe();
  EXPECT_EQ(refused.error().message.find(stack.motoAuthSecretAccessKey), std::string::npos);
}

// ---------------------------------------------------------------- IMDS

CurlImds makeImds(const Clock& clock, Sleeper& sleeper) {
  return CurlImds(imdsConfigFromEnv(envOf(
                      {{"AWS_EC2_METADATA_SERVICE_ENDPOINT", TestStack::get().imdsEndpoint}})),
                  clock, sleeper);
}

TEST(Imds, IdentityAndInterfacesFromMoto) {
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  auto id = imds.identity();
  ASSERT_TRUE(id) << id.error().describe();
  EXPECT_EQ(id->instanceId, TestStack::get().instanceId);
  EXPECT_EQ(id->region, "us-east-1");
  EXPECT_EQ(id->availabilityZone, "us-east-1a");
  auto map = imds.interfaces();
  ASSERT_TRUE(map) << map.error().describe();
  const ImdsInterface* primary = map->findByMac(id->primaryMac);
  ASSERT_NE(primary, nullptr);
  EXPECT_EQ(primary->deviceNumber, 0);
  EXPECT_EQ(primary->subnetId, TestStack::get().subnetA);
  EXPECT_EQ(primary->vpcId, TestStack::get().vpcId);
  ASSERT_FALSE(primary->localIpv4s.empty());
  EXPECT_EQ(map->findByIp(primary->localIpv4s[0]), primary);
  EXPECT_EQ(imds.tokenFetches(), 1u) << "one token, reused for every request";
}

TEST(Imds, AnEniAttachedInMotoAppearsUnderMacs) {
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  StaticCredentials creds("AKIATESTING", "testing-secret");
  Ec2ClientConfig config;
  config.region = TestStack::get().region;
  config.endpoint = TestStack::get().motoEndpoint;
  CurlEc2Client ec2(config, creds, clock, sleeper);
  CreateEniRequest request;
  request.subnetId = TestStack::get().subnetC;  // unique IPs, so findByIp is unambiguous
  auto eni = ec2.createNetworkInterface(request);
  ASSERT_TRUE(eni);
  auto before = imds.interfaces();
  ASSERT_TRUE(before);
  EXPECT_EQ(before->findByMac(eni->macAddress), nullptr);
  auto attachment = ec2.attachNetworkInterface(eni->id, TestStack::get().instanceId, 6);
  ASSERT_TRUE(attachment);
  auto after = imds.interfaces();
  ASSERT_TRUE(after);
  const ImdsInterface* seen = after->findByMac(eni->macAddress);
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->interfaceId, eni->id);
  EXPECT_EQ(seen->deviceNumber, 6);
  EXPECT_EQ(seen->subnetId, TestStack::get().subnetC);
  EXPECT_EQ(after->findByIp(eni->privateIpAddress), seen);
  ASSERT_TRUE(ec2.detachNetworkInterface(*attachment, true));
  ASSERT_TRUE(ec2.deleteNetworkInterface(eni->id));
}

TEST(Imds, ExpiredTokenIsRefreshedOnceOn401) {
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  ASSERT_TRUE(imds.get("instance-id"));
  TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/expire-tokens");
  auto id = imds.get("instance-id");
  ASSERT_TRUE(id) << id.error().describe();
  EXPECT_EQ(*id, TestStack::get().instanceId);
  EXPECT_EQ(imds.tokenFetches(), 2u);
  EXPECT_EQ(imds.requests(), 5u) << "PUT, GET, GET(401), PUT, GET";
}

TEST(Imds, DownIsTransientAfterBoundedAttemptsAndDisabledIsClear) {
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/down");
  auto r = imds.get("instance-id");
  TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/up");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
  EXPECT_EQ(imds.requests(), 3u) << "three attempts at the token, then give up";
  EXPECT_TRUE(imds.get("instance-id")) << "and it recovers";

  CurlImds disabled(imdsConfigFromEnv(envOf({{"AWS_EC2_METADATA_DISABLED", "true"}})), clock,
                    sleeper);
  auto off = disabled.identity();
  ASSERT_FALSE(off);
  EXPECT_EQ(off.error().code, ErrorCode::Invalid);
  EXPECT_NE(off.error().message.find("AWS_EC2_METADATA_DISABLED"), std::string::npos);
  EXPECT_EQ(disabled.requests(), 0u);
}

void imdsControl(const std::string& hook, const std::string& body) {
  TestStack::get().controlHttp("POST", TestStack::get().imdsEndpoint + "/_emulator/" + hook, body);
}

/// Clears the emulator's stale keys and huge answers, even when the test fails.
struct ImdsModes {
  ~ImdsModes() { imdsControl("reset", ""); }
};

// IMDS answering 64 MiB, chunked or with a Content-Length: the read fails with the cap's error
// (it is retried like any Transient failure, each attempt bounded), and IMDS works again after.
TEST(Imds, A64MiBAnswerFailsWithTheCapErrorChunkedOrNot) {
  ImdsModes reset;
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  auto hugeAnswers = [] {
    auto stats = parseJson(
        TestStack::get().controlHttp("GET", TestStack::get().imdsEndpoint + "/_emulator/stats"));
    return stats ? stats->get("huge", 0).asInt() : -1;
  };
  const int before = hugeAnswers();
  for (const char* chunked : {"true", "false"}) {
    SCOPED_TRACE(std::string("chunked ") + chunked);
    imdsControl("huge", std::string(R"({"path":"placement/region","bytes":67108864,"chunked":)") +
                            chunked + "}");
    auto region = imds.get("placement/region");
    ASSERT_FALSE(region);
    EXPECT_EQ(region.error().code, ErrorCode::Transient);
    EXPECT_NE(region.error().message.find("larger than the 64 KiB cap"), std::string::npos)
        << region.error().message;
  }
  EXPECT_EQ(hugeAnswers() - before, 6) << "three attempts each";
  imdsControl("huge", "{}");
  auto region = imds.get("placement/region");
  ASSERT_TRUE(region) << region.error().describe();
  EXPECT_EQ(*region, "us-east-1");
}

// IMDS lists only the keys that have a value, and a listed key can answer 404 for a moment
// (eventual consistency). A stale optional key reads as empty; a stale key the interface cannot do
// without skips that interface only.
TEST(Imds, AStaleKeySkipsAtMostItsOwnInterface) {
  ImdsModes reset;
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  StaticCredentials creds("AKIATESTING", "testing-secret");
  Ec2ClientConfig config;
  config.region = TestStack::get().region;
  config.endpoint = TestStack::get().motoEndpoint;
  CurlEc2Client ec2(config, creds, clock, sleeper);
  CreateEniRequest request;
  request.subnetId = TestStack::get().subnetC;
  auto eni = ec2.createNetworkInterface(request);
  ASSERT_TRUE(eni);
  auto attachment = ec2.attachNetworkInterface(eni->id, TestStack::get().instanceId, 7);
  ASSERT_TRUE(attachment);
  const std::string mac = eni->macAddress;
  auto listing = imds.get("network/interfaces/macs/" + mac + "/");
  ASSERT_TRUE(listing);
  const auto keys = splitImdsList(*listing);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "ipv4-prefix"), 0) << "no prefixes, not listed";
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "local-ipv4s"), 1);
  auto id = imds.identity();
  ASSERT_TRUE(id);

  imdsControl("stale", R"([{"mac":")" + mac + R"(","key":"ipv4-prefix"}])");
  auto optional = imds.interfaces();
  ASSERT_TRUE(optional) << optional.error().describe();
  EXPECT_TRUE(optional->skippedMacs.empty());
  ASSERT_NE(optional->findByMac(mac), nullptr);
  EXPECT_EQ(optional->findByIp(eni->privateIpAddress)->interfaceId, eni->id);

  imdsControl("stale", R"([{"mac":")" + mac + R"(","key":"local-ipv4s"}])");
  auto required = imds.interfaces();
  ASSERT_TRUE(required) << required.error().describe();
  EXPECT_EQ(required->findByMac(mac), nullptr);
  ASSERT_EQ(required->skippedMacs.count(mac), 1u);
  EXPECT_NE(required->skippedMacs.at(mac).find("local-ipv4s"), std::string::npos);
  ASSERT_NE(required->findByMac(id->primaryMac), nullptr) << "the other interfaces stay";

  imdsControl("stale", "[]");
  auto later = imds.interfaces();
  ASSERT_TRUE(later);
  EXPECT_TRUE(later->skippedMacs.empty());
  EXPECT_NE(later->findByMac(mac), nullptr) << "a later read refreshes it";
  ASSERT_TRUE(ec2.detachNetworkInterface(*attachment, true));
  ASSERT_TRUE(ec2.deleteNetworkInterface(eni->id));
}

// ---------------------------------------------------------------- credentials

TEST(Credentials, EverySourceAndNoSecretInLogsOrErrors) {
  const auto& stack = TestStack::get();
  std::vector<std::string> logs;
  logging::configure(LogFormat::Json, LogLevel::Debug);
  logging::setSink([&](const std::string& line) { logs.push_back(line); });
  SystemClock clock;
  RealSleeper sleeper;
  auto imds = makeImds(clock, sleeper);
  std::vector<std::string> secrets;
  std::vector<std::string> messages;

  // IMDS instance profile.
  DefaultCredentialChain fromImds(envOf({}), "us-east-1", &imds);
  auto viaImds = fromImds.credentials();
  ASSERT_TRUE(viaImds) << viaImds.error().describe();
  EXPECT_EQ(viaImds->source, "imds");
  EXPECT_EQ(viaImds->accessKeyId, "ASIAIMDSEMULATOR0001");
  ASSERT_TRUE(viaImds->expiration);
  secrets.push_back(viaImds->secretAccessKey);
  secrets.push_back(viaImds->sessionToken);

  // IRSA through moto's STS.
  const std::string tokenFile = stack.dir + "/web-identity-token";
  std::ofstream(tokenFile) << "eyJhbGciOiJSUzI1NiJ9.web-identity-token-secret.sig\n";
  DefaultCredentialChain irsa(envOf({{"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/eni-agent"},
                                     {"AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile},
                                     {"AWS_ENDPOINT_URL_STS", stack.motoEndpoint}}),
                              "us-east-1", &imds);
  auto viaIrsa = irsa.credentials();
  ASSERT_TRUE(viaIrsa) << viaIrsa.error().describe();
  EXPECT_EQ(viaIrsa->source, "web-identity");
  EXPECT_FALSE(viaIrsa->accessKeyId.empty());
  EXPECT_FALSE(viaIrsa->sessionToken.empty());
  secrets.push_back(viaIrsa->secretAccessKey);
  secrets.push_back("web-identity-token-secret");

  // EKS Pod Identity (the IMDS emulator plays the agent).
  const std::string podTokenFile = stack.dir + "/pod-identity-token";
  std::ofstream(podTokenFile) << "pod-identity-test-token";
  DefaultCredentialChain pod(
      envOf({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", stack.imdsEndpoint + "/_container/credentials"},
             {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", podTokenFile}}),
      "us-east-1", &imds);
  auto viaPod = pod.credentials();
  ASSERT_TRUE(viaPod) << viaPod.error().describe();
  EXPECT_EQ(viaPod->source, "container");
  EXPECT_EQ(viaPod->accessKeyId, "ASIACONTAINER0000001");
  secrets.push_back(viaPod->secretAccessKey);
  secrets.push_back("pod-identity-test-token");

  std::ofstream(podTokenFile) << "wrong-pod-identity-token-secret";
  DefaultCredentialChain badPod(
      envOf({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", stack.imdsEndpoint + "/_container/credentials"},
             {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", podTokenFile}}),
      "us-east-1", &imds);
  auto refused = badPod.credentials();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::Permission);
  messages.push_back(refused.error().describe());
  secrets.push_back("wrong-pod-identity-token-secret");

  // Environment, then a signed call that fails: the error must not carry the secret either.
  DefaultCredentialChain env(envOf({{"AWS_ACCESS_KEY_ID", stack.motoAuthAccessKeyId},
                                    {"AWS_SECRET_ACCESS_KEY", "env-secret-that-is-wrong"},
                                    {"AWS_SESSION_TOKEN", "env-session-token-secret"}}),
                             "us-east-1", &imds);
  Ec2ClientConfig config;
  config.region = stack.region;
  config.endpoint = stack.motoAuthEndpoint;
  config.maxAttempts = 1;
  CurlEc2Client ec2(config, env, clock, sleeper);
  auto denied = ec2.describeSubnets({}, {});
  ASSERT_FALSE(denied);
  messages.push_back(denied.error().describe());
  secrets.push_back("env-secret-that-is-wrong");
  secrets.push_back("env-session-token-secret");

  logging::setSink(nullptr);
  logging::configure(LogFormat::Json, LogLevel::Info);
  for (const auto& secret : secrets) {
    ASSERT_FALSE(secret.empty());
    for (const auto& line : logs) EXPECT_EQ(line.find(secret), std::string::npos) << line;
    for (const auto& m : messages) EXPECT_EQ(m.find(secret), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace eni
