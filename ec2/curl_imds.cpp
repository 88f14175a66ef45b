#include "ec2/curl_imds.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include "agent/base/json.h"
#include "agent/base/strings.h"
#include "ec2/ec2_xml.h"
#include "ec2/ip_prefix.h"

namespace eni {

std::vector<std::string> splitImdsList(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string entry = text.substr(start, end - start);
    while (!entry.empty() && (entry.back() == '/' || entry.back() == '\r' || entry.back() == ' ')) {
      entry.pop_back();
    }
    if (!entry.empty()) out.push_back(std::move(entry));
    start = end + 1;
  }
  return out;
}

namespace {

using ImdsGet = std::function<Result<std::string>(const std::string& path)>;

// One MAC's interface, or why it was skipped.
struct InterfaceRead {
  std::optional<ImdsInterface> interface;
  std::string skipped;
};

InterfaceRead skip(std::string why) { return InterfaceRead{std::nullopt, std::move(why)}; }

std::optional<std::int64_t> deviceNumber(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::int64_t n = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n < 0) return std::nullopt;
  return n;
}

Result<InterfaceRead> readInterface(const ImdsGet& get, const std::string& mac) {
  const std::string base = "network/interfaces/macs/" + mac + "/";
  auto listing = get(base);
  if (!listing && listing.error().code == ErrorCode::NotFound)
    return skip(listing.error().message + " (listed under macs/, then gone)");
  if (!listing) return fail(listing.error());
  const auto fields = splitImdsList(*listing);
  // IMDS is eventually consistent: a key it lists may still answer 404 for a moment. An
  // unlisted key is empty, as IMDS lists only keys that have a value (no ipv4-prefix without
  // prefixes, no local-ipv4s on an IPv6-only interface).
  std::string stale;  // the first key this interface cannot do without that answered 404
  auto read = [&](const char* key, bool required) -> Result<std::string> {
    if (std::find(fields.begin(), fields.end(), key) == fields.end()) return std::string();
    auto value = get(base + key);
    if (value || value.error().code != ErrorCode::NotFound) return value;
    if (required) stale = value.error().message + " (listed, then not found)";
    return std::string();
  };
  ImdsInterface i;
  i.mac = mac;
  std::string device, ipv4s;
  for (auto [key, out] : {std::pair{"interface-id", &i.interfaceId},
                          std::pair{"device-number", &device}, std::pair{"local-ipv4s", &ipv4s}}) {
    auto v = read(key, true);
    if (!v) return fail(v.error());
    if (!stale.empty()) return skip(stale);
    *out = std::move(*v);
  }
  i.localIpv4s = splitImdsList(ipv4s);
  if (!device.empty()) {
    auto n = deviceNumber(device);
    if (!n) return skip("IMDS " + base + "device-number is not a number: " + device.substr(0, 40));
    i.deviceNumber = *n;
  }
  for (auto [key, out] : {std::pair{"ipv4-prefix", &i.ipv4Prefixes}, std::pair{"ipv6s", &i.ipv6s},
                          std::pair{"ipv6-prefix", &i.ipv6Prefixes},
                          std::pair{"security-group-ids", &i.securityGroupIds}}) {
    auto v = read(key, false);
    if (!v) return fail(v.error());
    *out = splitImdsList(*v);
  }
  for (auto [key, out] : {std::pair{"subnet-id", &i.subnetId}, std::pair{"vpc-id", &i.vpcId}}) {
    auto v = read(key, false);
    if (!v) return fail(v.error());
    *out = std::move(*v);
  }
  return InterfaceRead{std::move(i), {}};
}

}  // namespace

Result<InterfaceMap> readInterfaceMap(const ImdsGet& get) {
  auto macs = get("network/interfaces/macs/");
  if (!macs) return fail(macs.error());
  InterfaceMap map;
  for (const auto& mac : splitImdsList(*macs)) {
    auto one = readInterface(get, mac);
    if (!one) return fail(one.error());
    if (auto& interface = one->interface; interface) {
      map.interfaces.push_back(std::move(*interface));
    } else {
      map.skippedMacs[mac] = std::move(one->skipped);
    }
  }
  return map;
}

const ImdsInterface* InterfaceMap::findByIp(const std::string& ip) const {
  for (const auto& i : interfaces) {
    if (std::find(i.localIpv4s.begin(), i.localIpv4s.end(), ip) != i.localIpv4s.end() ||
        std::find(i.ipv6s.begin(), i.ipv6s.end(), ip) != i.ipv6s.end()) {
      return &i;
    }
  }
  const auto address = IpPrefix::parse(ip);
  if (!address) return nullptr;
  for (const auto& i : interfaces) {
    for (const auto* prefixes : {&i.ipv4Prefixes, &i.ipv6Prefixes}) {
      for (const auto& text : *prefixes) {
        const auto prefix = IpPrefix::parse(text);
        if (prefix && prefix->contains(*address)) return &i;
      }
    }
  }
  return nullptr;
}

const ImdsInterface* InterfaceMap::findByMac(const std::string& mac) const {
  for (const auto& i : interfaces) {
    if (i.mac == mac) return &i;
  }
  return nullptr;
}

ImdsConfig imdsConfigFromEnv(const EnvLookup& env) {
  ImdsConfig config;
  if (auto endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT"); endpoint && !endpoint->empty()) {
    config.endpoint = *endpoint;
    while (!config.endpoint.empty() && config.endpoint.back() == '/') config.endpoint.pop_back();
  }
  if (auto disabled = env("AWS_EC2_METADATA_DISABLED")) {
    const std::string v = lower(*disabled);
    config.disabled = v == "true" || v == "1";
  }
  return config;
}

CurlImds::CurlImds(ImdsConfig config, const Clock& clock, Sleeper& sleeper)
    : config_(std::move(config)), clock_(clock), sleeper_(sleeper) {}

Result<HttpResponse> CurlImds::sendLocked(HttpRequest request) {
  request.connectTimeout = config_.connectTimeout;
  request.timeout = config_.timeout;
  request.maxBodyBytes = kImdsMaxBodyBytes;
  Result<HttpResponse> last = fail(ErrorCode::Internal, "IMDS: no attempt made");
  for (int attempt = 0; attempt < config_.attempts; ++attempt) {
    if (attempt > 0) sleeper_.sleepFor(Duration(100 * attempt));
    ++requests_;
    last = http_.perform(request);
    if (last && last->status < 500) return last;
    if (last) {
      last = fail(ErrorCode::Transient,
                  "IMDS " + request.url + ": HTTP " + std::to_string(last->status));
    }
  }
  return last;
}

Result<std::string> CurlImds::tokenLocked(bool refresh) {
  if (!refresh && !token_.empty() && clock_.now() < tokenRefreshAt_) return token_;
  HttpRequest put;
  put.method = "PUT";
  put.url = config_.endpoint + "/latest/api/token";
  put.headers.push_back("X-aws-ec2-metadata-token-ttl-seconds: " +
                        std::to_string(config_.tokenTtlSeconds));
  ++tokenFetches_;
  auto response = sendLocked(put);
  if (!response) return fail(response.error());
  if (response->status != 200 || response->body.empty()) {
    Error e{response->status == 403 ? ErrorCode::Permission : ErrorCode::Transient,
            "IMDS token: HTTP " + std::to_string(response->status) + " from " + put.url};
    e.httpStatus = response->status;
    return fail(std::move(e));
  }
  token_ = response->body;
  // Refresh five minutes before the token expires (or halfway, for short test TTLs).
  const int margin = std::min(300, config_.tokenTtlSeconds / 2);
  tokenRefreshAt_ = clock_.now() + std::chrono::seconds(config_.tokenTtlSeconds - margin);
  return token_;
}

Result<std::string> CurlImds::getLocked(const std::string& path) {
  if (config_.disabled) {
    return fail(ErrorCode::Invalid,
                "IMDS is disabled by AWS_EC2_METADATA_DISABLED; set --region "
                "and credentials in the environment instead");
  }
  for (int round = 0; round < 2; ++round) {
    auto token = tokenLocked(round > 0);
    if (!token) return fail(token.error());
    HttpRequest get;
    get.url = config_.endpoint + "/latest/meta-data/" + path;
    get.headers.push_back("X-aws-ec2-metadata-token: " + *token);
    auto response = sendLocked(get);
    if (!response) return fail(response.error());
    if (response->status == 200) return std::move(response->body);
    if (response->status == 401 && round == 0) continue;  // expired token: refresh once
    Error e{response->status == 404   ? ErrorCode::NotFound
            : response->status == 401 ? ErrorCode::Permission
                                      : ErrorCode::Transient,
            "IMDS " + path + ": HTTP " + std::to_string(response->status)};
    e.httpStatus = response->status;
    return fail(std::move(e));
  }
  return fail(ErrorCode::Permission, "IMDS " + path + ": 401 even with a fresh token");
}

Result<std::string> CurlImds::get(const std::string& path) {
  std::lock_guard<std::mutex> lock(mutex_);
  return getLocked(path);
}

Result<InstanceIdentity> CurlImds::identity() {
  std::lock_guard<std::mutex> lock(mutex_);
  InstanceIdentity id;
  for (auto [path, field] :
       {std::pair{"instance-id", &id.instanceId}, std::pair{"placement/region", &id.region},
        std::pair{"placement/availability-zone", &id.availabilityZone},
        std::pair{"mac", &id.primaryMac}}) {
    auto value = getLocked(path);
    if (!value) return fail(value.error());
    *field = *value;
  }
  return id;
}

Result<InterfaceMap> CurlImds::interfaces() {
  std::lock_guard<std::mutex> lock(mutex_);
  return readInterfaceMap([this](const std::string& path) { return getLocked(path); });
}

Result<Credentials> CurlImds::roleCredentials() {
  std::lock_guard<std::mutex> lock(mutex_);
  auto roles = getLocked("iam/security-credentials/");
  if (!roles) {
    if (roles.error().code == ErrorCode::NotFound) {
      return fail(ErrorCode::Permission,
                  "IMDS: this instance has no instance profile (no role under "
                  "iam/security-credentials/)");
    }
    return fail(roles.error());
  }
  const auto names = splitImdsList(*roles);
  if (names.empty()) return fail(ErrorCode::Permission, "IMDS: the instance profile has no role");
  auto body = getLocked("iam/security-credentials/" + names.front());
  if (!body) return fail(body.error());
  auto json = parseJson(*body);
  if (!json) return fail(ErrorCode::Internal, "IMDS role credentials: the answer is not JSON");
  if (stringField(*json, "Code", "Success") != "Success") {
    return fail(ErrorCode::Permission, "IMDS role credentials: " + stringField(*json, "Code"));
  }
  Credentials c;
  c.accessKeyId = stringField(*json, "AccessKeyId");
  c.secretAccessKey = stringField(*json, "SecretAccessKey");
  c.sessionToken = stringField(*json, "Token");
  c.source = "imds";
  if (c.accessKeyId.empty() || c.secretAccessKey.empty()) {
    return fail(ErrorCode::Internal,
                "IMDS role credentials: AccessKeyId or SecretAccessKey missing");
  }
  if (auto exp = parseIso8601(stringField(*json, "Expiration")); exp) c.expiration = *exp;
  return c;
}

}  // namespace eni
