#pragma once

#include <ctime>
#include <string>

#include "agent/base/error.h"
#include "agent/base/files.h"

namespace eni {

/// How to reach and authenticate to the API server. TLS is always verified: there is no
/// insecure-skip option.
struct KubeConfig {
  std::string server;     // https://host:port
  std::string caPem;      // certificate-authority-data, or the CA file's contents
  std::string token;      // static bearer token
  std::string tokenFile;  // re-read when it changes (projected service-account tokens rotate)
  std::string clientCertPem;
  std::string clientKeyPem;
  std::string source;  // the file it came from, for error messages
};

/// Reads a kubeconfig file (YAML), using its current-context. Errors name the file and field.
[[nodiscard]] Result<KubeConfig> loadKubeconfig(const std::string& path);

/// In-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and the service-account directory
/// (`token`, `ca.crt`), normally /var/run/secrets/kubernetes.io/serviceaccount.
[[nodiscard]] Result<KubeConfig> loadInCluster(const std::string& host, const std::string& port,
                                               const std::string& serviceAccountDir);

/// The bearer token of a config: the static one, or the token file's contents, re-read only when
/// the file's modification time or size changed. Errors name the file.
class TokenSource {
 public:
  explicit TokenSource(const KubeConfig& config) : token_(config.token), file_(config.tokenFile) {}
  [[nodiscard]] Result<std::string> current();
  /// Number of times the file was read; tests check the rotation logic with it.
  int reads() const { return reads_; }

 private:
  std::string token_;
  std::string file_;
  std::timespec mtime_{};
  long long size_ = -1;
  int reads_ = 0;
};

}  // namespace eni
