#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "agent/base/env.h"
#include "agent/base/error.h"
#include "ec2/aws_types.h"
#include "ec2/imds.h"

namespace eni {

/// Where AWS credentials come from. Thread-safe. Errors never contain a secret or a token.
class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  [[nodiscard]] virtual Result<Credentials> credentials() = 0;
  /// Drops cached credentials, so that the next credentials() fetches them again: AWS refused
  /// the cached ones, and the source may have new ones (a refreshed role, a rotated token).
  virtual void forget() {}
};

/// The AWS SDK order, decided once from the environment:
///   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
///   2. IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, through STS AssumeRoleWithWebIdentity
///      (AWS_ENDPOINT_URL_STS, then AWS_ENDPOINT_URL, then https://sts.<region>.amazonaws.com);
///   3. EKS Pod Identity: AWS_CONTAINER_CREDENTIALS_FULL_URI with the token from
///      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (or AWS_CONTAINER_AUTHORIZATION_TOKEN);
///   4. IMDS instance-profile credentials.
/// Credentials are cached until five minutes before they expire; a refresh holds a lock for one
/// call, so other callers wait at most that long.
class DefaultCredentialChain final : public CredentialProvider {
 public:
  /// `imds` may be null when IMDS is not available; source 4 then fails clearly.
  DefaultCredentialChain(EnvLookup env, std::string region, Imds* imds,
                         std::function<std::chrono::system_clock::time_point()> now = {});
  Result<Credentials> credentials() override;
  void forget() override;
  /// "environment", "web-identity", "container" or "imds".
  const std::string& source() const { return source_; }
  /// How many times a source was asked (cache misses); tests check the caching with it.
  int fetches() const { return fetches_; }

 private:
  Result<Credentials> fetch();
  Result<Credentials> fromWebIdentity();
  Result<Credentials> fromContainer();

  EnvLookup env_;
  std::string region_;
  Imds* imds_;
  std::function<std::chrono::system_clock::time_point()> now_;
  std::string source_;
  std::mutex mutex_;
  std::optional<Credentials> cached_;
  int fetches_ = 0;
};

/// The STS endpoint the SDKs would use for `region`.
std::string stsEndpoint(const EnvLookup& env, const std::string& region);

}  // namespace eni
