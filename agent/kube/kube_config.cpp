#include "agent/kube/kube_config.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <yaml-cpp/yaml.h>

namespace eni {
namespace {

std::string dirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string resolve(const std::string& base, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return base + "/" + path;
}

// yaml-cpp throws on a type mismatch; these read a scalar or give empty.
std::string scalar(const YAML::Node& node, const char* key) {
  const YAML::Node child = node[key];
  if (!child || !child.IsScalar()) return {};
  return child.Scalar();
}

YAML::Node namedEntry(const YAML::Node& list, const std::string& name, const char* inner) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& entry : list) {
    if (entry.IsMap() && scalar(entry, "name") == name) return entry[inner];
  }
  return YAML::Node();
}

Result<std::string> pemField(const YAML::Node& node, const std::string& dir, const char* dataKey,
                             const char* fileKey, const std::string& where) {
  const std::string data = scalar(node, dataKey);
  if (!data.empty()) {
    auto decoded = base64Decode(data);
    if (!decoded) return fail(ErrorCode::Invalid, where + "." + dataKey + " is not valid base64");
    return *decoded;
  }
  const std::string file = scalar(node, fileKey);
  if (file.empty()) return std::string();
  auto content = readFile(resolve(dir, file));
  if (!content) {
    return fail(ErrorCode::Invalid, where + "." + fileKey + ": " + content.error().message);
  }
  return *content;
}

// clusters[name].cluster: the server URL and the CA that signs it.
Result<void> readCluster(const YAML::Node& cluster, const std::string& clusterName,
                         const std::string& path, KubeConfig& config) {
  auto invalid = [&path](const std::string& why) {
    return fail(ErrorCode::Invalid, "kubeconfig " + path + ": " + why);
  };
  config.server = scalar(cluster, "server");
  if (config.server.empty())
    return invalid("clusters[" + clusterName + "].cluster.server is empty");
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return invalid("clusters[" + clusterName + "].cluster.server \"" + config.server +
                   "\" is not an http(s) URL");
  }
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (scalar(cluster, "insecure-skip-tls-verify") == "true") {
    return invalid("clusters[" + clusterName +
                   "].cluster.insecure-skip-tls-verify is set; eni-agent always verifies TLS, "
                   "give certificate-authority-data instead");
  }
  auto ca = pemField(cluster, dirOf(path), "certificate-authority-data", "certificate-authority",
                     "kubeconfig " + path + ": clusters[" + clusterName + "].cluster");
  if (!ca) return fail(ca.error());
  config.caPem = *ca;
  return {};
}

// users[name].user: a token, a token file or a client certificate and its key.
Result<void> readUser(const YAML::Node& user, const std::string& userName, const std::string& path,
                      KubeConfig& config) {
  const std::string dir = dirOf(path);
  const std::string where = "kubeconfig " + path + ": users[" + userName + "].user";
  if (user["exec"] || user["auth-provider"]) {
    return fail(ErrorCode::Invalid, where +
                                        " uses an exec or auth-provider plugin, which eni-agent "
                                        "does not run; use a token, tokenFile or client "
                                        "certificate");
  }
  config.token = scalar(user, "token");
  const std::string tokenFile = scalar(user, "tokenFile");
  if (!tokenFile.empty()) config.tokenFile = resolve(dir, tokenFile);
  auto cert = pemField(user, dir, "client-certificate-data", "client-certificate", where);
  if (!cert) return fail(cert.error());
  auto key = pemField(user, dir, "client-key-data", "client-key", where);
  if (!key) return fail(key.error());
  config.clientCertPem = *cert;
  config.clientKeyPem = *key;
  if (config.clientCertPem.empty() != config.clientKeyPem.empty()) {
    return fail(ErrorCode::Invalid, where +
                                        " has a client certificate without its key, or a key "
                                        "without its certificate");
  }
  return {};
}

Result<KubeConfig> parse(const std::string& path, const YAML::Node& root) {
  auto invalid = [&path](const std::string& why) {
    return fail(ErrorCode::Invalid, "kubeconfig " + path + ": " + why);
  };
  if (!root.IsMap()) return invalid("not a kubeconfig (expected a YAML mapping)");
  const std::string contextName = scalar(root, "current-context");
  if (contextName.empty()) return invalid("current-context is not set");
  const YAML::Node context = namedEntry(root["contexts"], contextName, "context");
  if (!context || !context.IsMap()) {
    return invalid("contexts has no entry named \"" + contextName + "\" (current-context)");
  }
  const std::string clusterName = scalar(context, "cluster");
  const std::string userName = scalar(context, "user");
  const YAML::Node cluster = namedEntry(root["clusters"], clusterName, "cluster");
  if (!cluster || !cluster.IsMap()) {
    return invalid("clusters has no entry named \"" + clusterName + "\"");
  }
  KubeConfig config;
  config.source = path;
  if (auto ok = readCluster(cluster, clusterName, path, config); !ok) return fail(ok.error());
  if (!userName.empty()) {
    const YAML::Node user = namedEntry(root["users"], userName, "user");
    if (!user || !user.IsMap()) return invalid("users has no entry named \"" + userName + "\"");
    if (auto ok = readUser(user, userName, path, config); !ok) return fail(ok.error());
  }
  return config;
}

}  // namespace

Result<KubeConfig> loadKubeconfig(const std::string& path) {
  auto text = readFile(path);
  if (!text) {
    return fail(ErrorCode::Invalid, "kubeconfig: " + text.error().message +
                                        " (set --kubeconfig or KUBECONFIG to a readable file)");
  }
  try {
    return parse(path, YAML::Load(*text));
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::Invalid, "kubeconfig " + path + ": not valid YAML: " + e.what());
  }
}

Result<KubeConfig> loadInCluster(const std::string& host, const std::string& port,
                                 const std::string& serviceAccountDir) {
  if (host.empty() || port.empty()) {
    return fail(ErrorCode::Invalid,
                "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are "
                "not set; pass --kubeconfig, or --mode=host on a plain EC2 instance");
  }
  KubeConfig config;
  config.source = serviceAccountDir;
  const bool ipv6 = host.find(':') != std::string::npos;
  config.server = "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port;
  config.tokenFile = serviceAccountDir + "/token";
  auto ca = readFile(serviceAccountDir + "/ca.crt");
  if (!ca) return fail(ErrorCode::Invalid, "in-cluster CA: " + ca.error().message);
  config.caPem = *ca;
  TokenSource probe(config);
  if (auto token = probe.current(); !token) return fail(token.error());
  return config;
}

Result<std::string> TokenSource::current() {
  if (file_.empty()) return token_;
  struct stat st {};
  if (stat(file_.c_str(), &st) != 0) {
    return fail(ErrorCode::Permission,
                "service-account token file " + file_ + ": " + std::strerror(errno));
  }
  const bool changed = st.st_mtim.tv_sec != mtime_.tv_sec || st.st_mtim.tv_nsec != mtime_.tv_nsec ||
                       static_cast<long long>(st.st_size) != size_;
  if (!changed && !token_.empty()) return token_;
  auto content = readFile(file_);
  if (!content) {
    return fail(ErrorCode::Permission, "service-account token file: " + content.error().message);
  }
  std::string token = std::move(*content);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.empty()) {
    return fail(ErrorCode::Permission, "service-account token file " + file_ + " is empty");
  }
  ++reads_;
  token_ = std::move(token);
  mtime_ = st.st_mtim;
  size_ = static_cast<long long>(st.st_size);
  return token_;
}

}  // namespace eni
