#include "ec2/credentials.h"

#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/base/strings.h"
#include "agent/http/blocking_http_client.h"
#include "ec2/ec2_xml.h"

namespace eni {
namespace {

// STS's and the container endpoint's answers are a few KiB (three keys, a session token of up
// to about 2 KiB, an expiry); anything much larger is not a credential answer.
constexpr std::size_t kCredentialsMaxBodyBytes = std::size_t{64} << 10;

bool set(const EnvLookup& env, const char* name) {
  auto v = env(name);
  return v && !v->empty();
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string stsEndpoint(const EnvLookup& env, const std::string& region) {
  for (const char* name : {"AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"}) {
    if (auto v = env(name); v && !v->empty()) return *v;
  }
  return "https://sts." + (region.empty() ? std::string("us-east-1") : region) + ".amazonaws.com";
}

DefaultCredentialChain::DefaultCredentialChain(
    EnvLookup env, std::string region, Imds* imds,
    std::function<std::chrono::system_clock::time_point()> now)
    : env_(std::move(env)), region_(std::move(region)), imds_(imds), now_(std::move(now)) {
  if (!now_) now_ = [] { return std::chrono::system_clock::now(); };
  if (set(env_, "AWS_ACCESS_KEY_ID") && set(env_, "AWS_SECRET_ACCESS_KEY")) {
    source_ = "environment";
  } else if (set(env_, "AWS_ROLE_ARN") && set(env_, "AWS_WEB_IDENTITY_TOKEN_FILE")) {
    source_ = "web-identity";
  } else if (set(env_, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    source_ = "container";
  } else {
    source_ = "imds";
  }
}

Result<Credentials> DefaultCredentialChain::credentials() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cached_ &&
      (!cached_->expiration || now_() < *cached_->expiration - std::chrono::minutes(5))) {
    return *cached_;
  }
  ++fetches_;
  auto fresh = fetch();
  if (!fresh) return fail(fresh.error());
  cached_ = *fresh;
  return fresh;
}

Result<Credentials> DefaultCredentialChain::fetch() {
  if (source_ == "environment") {
    Credentials c;
    c.accessKeyId = env_("AWS_ACCESS_KEY_ID").value_or("");
    c.secretAccessKey = env_("AWS_SECRET_ACCESS_KEY").value_or("");
    c.sessionToken = env_("AWS_SESSION_TOKEN").value_or("");
    c.source = "environment";
    return c;
  }
  if (source_ == "web-identity") return fromWebIdentity();
  if (source_ == "container") return fromContainer();
  if (imds_ == nullptr) {
    return fail(
        ErrorCode::Permission,
        "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, IRSA "
        "(AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) or Pod Identity, or run on an instance "
        "with a profile");
  }
  auto c = imds_->roleCredentials();
  if (!c) return fail(c.error().code, "instance-profile credentials: " + c.error().message);
  return c;
}

Result<Credentials> DefaultCredentialChain::fromWebIdentity() {
  const std::string tokenFile = env_("AWS_WEB_IDENTITY_TOKEN_FILE").value_or("");
  auto token = readFile(tokenFile);
  if (!token) {
    return fail(ErrorCode::Permission, "IRSA web identity token: " + token.error().message);
  }
  const std::string session = env_("AWS_ROLE_SESSION_NAME").value_or("eni-agent");
  HttpRequest request;
  request.method = "POST";
  request.url = stsEndpoint(env_, region_);
  request.headers.push_back("Content-Type: application/x-www-form-urlencoded; charset=utf-8");
  request.body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" +
                 percentEncode(env_("AWS_ROLE_ARN").value_or("")) +
                 "&RoleSessionName=" + percentEncode(session.empty() ? "eni-agent" : session) +
                 "&WebIdentityToken=" + percentEncode(trimmed(*token));
  request.timeout = Duration(10000);
  request.maxBodyBytes = kCredentialsMaxBodyBytes;
  BlockingHttpClient http;
  auto response = http.perform(request);
  if (!response)
    return fail(response.error().code,
                "STS AssumeRoleWithWebIdentity: " + response.error().message);
  if (response->status != 200)
    return fail(decodeEc2Error("STS AssumeRoleWithWebIdentity", response->status, response->body));
  return decodeAssumeRoleWithWebIdentity(response->body);
}

Result<Credentials> DefaultCredentialChain::fromContainer() {
  HttpRequest request;
  request.url = env_("AWS_CONTAINER_CREDENTIALS_FULL_URI").value_or("");
  request.connectTimeout = Duration(1000);
  request.timeout = Duration(5000);
  request.maxBodyBytes = kCredentialsMaxBodyBytes;
  std::string token = env_("AWS_CONTAINER_AUTHORIZATION_TOKEN").value_or("");
  if (auto file = env_("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); file && !file->empty()) {
    auto content = readFile(*file);
    if (!content)
      return fail(ErrorCode::Permission, "Pod Identity token: " + content.error().message);
    token = trimmed(*content);
  }
  if (!token.empty()) request.headers.push_back("Authorization: " + token);
  BlockingHttpClient http;
  auto response = http.perform(request);
  if (!response)
    return fail(response.error().code, "container credentials: " + response.error().message);
  if (response->status != 200) {
    Error e{
        response->status >= 500 ? ErrorCode::Transient : ErrorCode::Permission,
        "container credentials: HTTP " + std::to_string(response->status) + " from " + request.url};
    e.httpStatus = response->status;
    return fail(std::move(e));
  }
  auto json = parseJson(response->body);
  if (!json) return fail(ErrorCode::Internal, "container credentials: the answer is not JSON");
  Credentials c;
  c.accessKeyId = stringField(*json, "AccessKeyId");
  c.secretAccessKey = stringField(*json, "SecretAccessKey");
  c.sessionToken = stringField(*json, "Token");
  c.source = "container";
  if (c.accessKeyId.empty() || c.secretAccessKey.empty()) {
    return fail(ErrorCode::Internal,
                "container credentials: AccessKeyId or SecretAccessKey missing");
  }
  if (auto exp = parseIso8601(stringField(*json, "Expiration")); exp) c.expiration = *exp;
  return c;
}

}  // namespace eni
