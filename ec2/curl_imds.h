#pragma once

#include <atomic>
#include <mutex>

#include "agent/base/clock.h"
#include "agent/base/env.h"
#include "agent/http/blocking_http_client.h"
#include "ec2/imds.h"

namespace eni {

/// The body cap of every IMDS answer. The largest the agent reads are an interface's address
/// lists (50 IPv4 and 50 IPv6 addresses, a few KiB) and the role credentials (about 2 KiB); a
/// metadata service answering more than this is not one to trust.
inline constexpr std::size_t kImdsMaxBodyBytes = std::size_t{64} << 10;

struct ImdsConfig {
  std::string endpoint = "http://169.254.169.254";
  bool disabled = false;
  Duration connectTimeout{1000};
  Duration timeout{2000};
  int attempts = 3;  // per request, for Transient failures only
  int tokenTtlSeconds = 21600;
};

/// AWS_EC2_METADATA_SERVICE_ENDPOINT and AWS_EC2_METADATA_DISABLED, as the AWS SDKs read them.
ImdsConfig imdsConfigFromEnv(const EnvLookup& env);

/// IMDSv2 over libcurl. The session token is fetched with PUT (TTL 21600), reused, refreshed five
/// minutes before it expires, and refreshed once more when a request gets 401.
class CurlImds final : public Imds {
 public:
  CurlImds(ImdsConfig config, const Clock& clock, Sleeper& sleeper);

  Result<std::string> get(const std::string& path) override;
  Result<InstanceIdentity> identity() override;
  Result<InterfaceMap> interfaces() override;
  Result<Credentials> roleCredentials() override;

  /// HTTP requests sent, token PUTs included (eni_agent_imds_requests_total).
  std::uint64_t requests() const { return requests_.load(); }
  std::uint64_t tokenFetches() const { return tokenFetches_.load(); }

 private:
  Result<std::string> getLocked(const std::string& path);
  Result<std::string> tokenLocked(bool refresh);
  Result<HttpResponse> sendLocked(HttpRequest request);

  ImdsConfig config_;
  const Clock& clock_;
  Sleeper& sleeper_;
  std::mutex mutex_;
  BlockingHttpClient http_;
  std::string token_;
  TimePoint tokenRefreshAt_{};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> tokenFetches_{0};
};

}  // namespace eni
