#include "ec2/credentials.h"

#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"

#include <gtest/gtest.h>

#include <map>

namespace eni {
namespace {

class FakeImds final : public Imds {
 public:
  Result<std::string> get(const std::string&) override { return fail(ErrorCode::NotFound, "fake"); }
  Result<InstanceIdentity> identity() override { return fail(ErrorCode::NotFound, "fake"); }
  Result<InterfaceMap> interfaces() override { return InterfaceMap{}; }
  Result<Credentials> roleCredentials() override {
    ++calls;
    Credentials c;
    c.accessKeyId = "ASIAIMDS";
    c.secretAccessKey = "imds-secret";
    c.sessionToken = "imds-token";
    c.source = "imds";
    c.expiration = expiration;
    return c;
  }
  int calls = 0;
  std::chrono::system_clock::time_point expiration;
};

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(CredentialChain, PicksTheFirstConfiguredSourceInSdkOrder) {
  FakeImds imds;
  EXPECT_EQ(DefaultCredentialChain(envOf({{"AWS_ACCESS_KEY_ID", "a"},
                                          {"AWS_SECRET_ACCESS_KEY", "b"},
                                          {"AWS_ROLE_ARN", "r"},
                                          {"AWS_WEB_IDENTITY_TOKEN_FILE", "f"}}),
                                   "us-east-1", &imds)
                .source(),
            "environment");
  EXPECT_EQ(DefaultCredentialChain(envOf({{"AWS_ROLE_ARN", "r"},
                                          {"AWS_WEB_IDENTITY_TOKEN_FILE", "f"},
                                          {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://x"}}),
                                   "us-east-1", &imds)
                .source(),
            "web-identity");
  EXPECT_EQ(DefaultCredentialChain(envOf({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://x"}}),
                                   "us-east-1", &imds)
                .source(),
            "container");
  EXPECT_EQ(DefaultCredentialChain(envOf({{"AWS_ACCESS_KEY_ID", "only-half"}}), "us-east-1", &imds)
                .source(),
            "imds");
}

TEST(CredentialChain, EnvironmentKeys) {
  DefaultCredentialChain chain(envOf({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                      {"AWS_SECRET_ACCESS_KEY", "s"},
                                      {"AWS_SESSION_TOKEN", "t"}}),
                               "us-east-1", nullptr);
  auto c = chain.credentials();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->accessKeyId, "AKIAENV");
  EXPECT_EQ(c->sessionToken, "t");
  EXPECT_FALSE(c->expiration);
}

TEST(CredentialChain, CachesUntilFiveMinutesBeforeExpiry) {
  FakeImds imds;
  auto now = std::chrono::system_clock::time_point(std::chrono::hours(1000));
  imds.expiration = now + std::chrono::minutes(60);
  DefaultCredentialChain chain(envOf({}), "us-east-1", &imds, [&] { return now; });
  ASSERT_TRUE(chain.credentials());
  ASSERT_TRUE(chain.credentials());
  EXPECT_EQ(imds.calls, 1);
  now += std::chrono::minutes(54);
  ASSERT_TRUE(chain.credentials());
  EXPECT_EQ(imds.calls, 1) << "six minutes left: still cached";
  now += std::chrono::minutes(2);
  imds.expiration = now + std::chrono::minutes(60);
  ASSERT_TRUE(chain.credentials());
  EXPECT_EQ(imds.calls, 2) << "four minutes left: refreshed";
  EXPECT_EQ(chain.fetches(), 2);
}

TEST(CredentialChain, NoSourceIsAClearPermissionError) {
  DefaultCredentialChain chain(envOf({}), "us-east-1", nullptr);
  auto c = chain.credentials();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::Permission);
  EXPECT_NE(c.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST(CredentialChain, UnreadableWebIdentityTokenNamesTheFile) {
  DefaultCredentialChain chain(envOf({{"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"},
                                      {"AWS_WEB_IDENTITY_TOKEN_FILE", "/no/such/token"}}),
                               "us-east-1", nullptr);
  auto c = chain.credentials();
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("/no/such/token"), std::string::npos);
}

TEST(StsEndpoint, FollowsTheSdkOrder) {
  EXPECT_EQ(stsEndpoint(envOf({}), "eu-west-1"), "https://sts.eu-west-1.amazonaws.com");
  EXPECT_EQ(stsEndpoint(envOf({{"AWS_ENDPOINT_URL", "http://a"}}), "eu-west-1"), "http://a");
  EXPECT_EQ(
      stsEndpoint(envOf({{"AWS_ENDPOINT_URL", "http://a"}, {"AWS_ENDPOINT_URL_STS", "http://s"}}),
                  "x"),
      "http://s");
}

TEST(Ec2Endpoint, FollowsTheSdkOrder) {
  EXPECT_EQ(ec2Endpoint(envOf({}), "eu-west-1"), "https://ec2.eu-west-1.amazonaws.com");
  EXPECT_EQ(ec2Endpoint(envOf({{"AWS_ENDPOINT_URL", "http://all/"}}), "eu-west-1"), "http://all");
  EXPECT_EQ(
      ec2Endpoint(
          envOf({{"AWS_ENDPOINT_URL", "http://all"}, {"AWS_ENDPOINT_URL_EC2", "http://ec2"}}), "x"),
      "http://ec2");
}

TEST(ImdsConfig, EndpointAndDisabledFromTheEnvironment) {
  EXPECT_EQ(imdsConfigFromEnv(envOf({})).endpoint, "http://169.254.169.254");
  EXPECT_FALSE(imdsConfigFromEnv(envOf({})).disabled);
  auto c = imdsConfigFromEnv(envOf({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/"},
                                    {"AWS_EC2_METADATA_DISABLED", "TRUE"}}));
  EXPECT_EQ(c.endpoint, "http://127.0.0.1:9");
  EXPECT_TRUE(c.disabled);
  EXPECT_EQ(c.connectTimeout, Duration(1000));
  EXPECT_EQ(c.timeout, Duration(2000));
  EXPECT_EQ(c.tokenTtlSeconds, 21600);
}

}  // namespace
}  // namespace eni
