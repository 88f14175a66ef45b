#pragma once

#include <mutex>
#include <optional>
#include <random>

#include "agent/base/backoff.h"
#include "agent/base/clock.h"
#include "agent/base/env.h"
#include "agent/http/blocking_http_client.h"
#include "ec2/aws_health.h"
#include "ec2/call_counters.h"
#include "ec2/credentials.h"
#include "ec2/ec2_api.h"
#include "ec2/rate_limiter.h"

namespace eni {

/// The body cap of one EC2 answer. The biggest is a DescribeNetworkInterfaces page: at most
/// MaxResults (1000) interfaces of 3-6 KiB each (50 addresses, tags, groups), so 8 MiB fits a
/// full page and still keeps a misbehaving endpoint well inside the DaemonSet's memory limit.
inline constexpr std::size_t kEc2MaxBodyBytes = std::size_t{8} << 20;

struct Ec2ClientConfig {
  std::string region;
  std::string endpoint;  // resolved with ec2Endpoint()
  double qps = 5;
  std::int64_t burst = 10;
  int maxAttempts = 4;  // first try plus retries, for Transient and Throttled only
  Duration backoffBase{200};
  Duration backoffCap{5000};
  int describePageSize = 1000;  // MaxResults of DescribeNetworkInterfaces pages (5-1000)
  Duration connectTimeout{3000};
  Duration timeout{10000};  // per attempt
  // While AWS refuses the credentials, fetch fresh ones from the chain at most this often, so a
  // rotated key or a refreshed role is picked up without a restart and without a storm of STS
  // or IMDS requests.
  Duration refusedCredentialsRefresh{60000};
};

/// AWS_ENDPOINT_URL_EC2, then AWS_ENDPOINT_URL, then https://ec2.<region>.amazonaws.com.
std::string ec2Endpoint(const EnvLookup& env, const std::string& region);

/// Ec2Api over the EC2 Query protocol: form-encoded POSTs (Version=2016-11-15) signed by libcurl's
/// CURLOPT_AWS_SIGV4, answers read with pugixml. Calls are serialised on one connection, which
/// is reused; the agent makes them from one worker thread anyway.
class CurlEc2Client final : public Ec2Api {
 public:
  CurlEc2Client(Ec2ClientConfig config, CredentialProvider& credentials, const Clock& clock,
                Sleeper& sleeper, std::uint64_t seed = std::random_device{}());

  Duration untilCalls(int calls) const override { return limiter_.untilAvailable(calls); }

  Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>& ids, const std::vector<Filter>& filters) override;
  Result<void> createTags(const std::vector<std::string>& resources,
                          const std::vector<Tag>& tags) override;
  Result<void> deleteTags(const std::vector<std::string>& resources,
                          const std::vector<Tag>& tags) override;
  Result<NetworkInterface> createNetworkInterface(const CreateEniRequest& request) override;
  Result<std::string> attachNetworkInterface(const std::string& eniId,
                                             const std::string& instanceId,
                                             std::int64_t deviceIndex) override;
  Result<void> detachNetworkInterface(const std::string& attachmentId, bool force) override;
  Result<void> deleteNetworkInterface(const std::string& eniId) override;
  Result<void> setDeleteOnTermination(const std::string& eniId, const std::string& attachmentId,
                                      bool deleteOnTermination) override;
  Result<std::vector<Subnet>> describeSubnets(const std::vector<std::string>& ids,
                                              const std::vector<Filter>& filters) override;
  Result<std::vector<SecurityGroup>> describeSecurityGroups(
      const std::vector<std::string>& ids, const std::vector<Filter>& filters) override;
  Result<Instance> describeInstance(const std::string& instanceId) override;

  const CallCounters& counters() const { return counters_; }
  /// Whether AWS accepts the credentials, from every call's answer (readiness reads it).
  const AwsHealth& health() const { return health_; }
  const RateLimiter& rateLimiter() const { return limiter_; }
  long connectionsOpened() const { return http_.connectionsOpened(); }

  /// Query parameters, in order; values are percent-encoded when the body is built.
  using Params = std::vector<std::pair<std::string, std::string>>;
  /// Reads a 2xx body (decodes it into the caller's variable). A Transient error (the body is not
  /// the action's answer) is retried like any other Transient failure; other errors end the call.
  using Accept = std::function<Result<void>(std::string_view body)>;
  /// One action with retries, its 2xx body handed to `accept`.
  [[nodiscard]] Result<void> call(const std::string& action, const Params& params,
                                  const Accept& accept);
  /// One action with retries; the raw 2xx body once checkEc2Response accepts it. For tests and
  /// for actions the agent does not decode.
  [[nodiscard]] Result<std::string> call(const std::string& action, const Params& params);

 private:
  // The POST of one attempt, signed with `creds`.
  HttpRequest signedRequest(const std::string& body, const Credentials& creds,
                            const char* invocation, int attempt) const;
  // One attempt: nullopt when EC2 answered and `accept` took the answer, else why not.
  std::optional<Error> attemptOnce(const std::string& action, const HttpRequest& request,
                                   const Accept& accept);
  // Credentials for the next attempt; fresh ones while AWS refuses the cached ones (see
  // Ec2ClientConfig::refusedCredentialsRefresh). A failed chain is recorded as a refusal.
  Result<Credentials> credentialsForAttempt();
  Ec2ClientConfig config_;
  CredentialProvider& credentials_;
  const Clock& clock_;
  Sleeper& sleeper_;
  RateLimiter limiter_;
  CallCounters counters_;
  AwsHealth health_;
  std::mutex mutex_;
  std::optional<TimePoint> credentialsForgotten_;  // the last refresh after a refusal
  BlockingHttpClient http_;
  Backoff backoff_;
  // amz-sdk-invocation-id: one per call, the same on each of its attempts (as the AWS SDKs do).
  std::mt19937_64 invocationRng_{std::random_device{}()};
};

/// "Filter.1.Name", "Filter.1.Value.1", ... and "NetworkInterfaceId.1", ...
void addFilters(CurlEc2Client::Params& params, const std::vector<Filter>& filters);
void addList(CurlEc2Client::Params& params, const std::string& prefix,
             const std::vector<std::string>& values);
std::string resultLabel(ErrorCode code);

}  // namespace eni
