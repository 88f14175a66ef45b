#include "ec2/curl_ec2_client.h"

#include <cstdio>
#include <optional>

#include "agent/base/strings.h"
#include "ec2/ec2_xml.h"

namespace eni {

std::string ec2Endpoint(const EnvLookup& env, const std::string& region) {
  for (const char* name : {"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"}) {
    if (auto v = env(name); v && !v->empty()) {
      std::string url = *v;
      while (!url.empty() && url.back() == '/') url.pop_back();
      return url;
    }
  }
  return "https://ec2." + region + ".amazonaws.com";
}

void addFilters(CurlEc2Client::Params& params, const std::vector<Filter>& filters) {
  for (std::size_t i = 0; i < filters.size(); ++i) {
    const std::string prefix = "Filter." + std::to_string(i + 1);
    params.emplace_back(prefix + ".Name", filters[i].name);
    for (std::size_t j = 0; j < filters[i].values.size(); ++j) {
      params.emplace_back(prefix + ".Value." + std::to_string(j + 1), filters[i].values[j]);
    }
  }
}

void addList(CurlEc2Client::Params& params, const std::string& prefix,
             const std::vector<std::string>& values) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    params.emplace_back(prefix + "." + std::to_string(i + 1), values[i]);
  }
}

namespace {

// An Accept that decodes the body into `out`.
template <class T, class Decode>
CurlEc2Client::Accept into(std::optional<T>& out, Decode decode) {
  return [&out, decode](std::string_view body) -> Result<void> {
    auto value = decode(body);
    if (!value) return fail(value.error());
    out = std::move(*value);
    return {};
  };
}

// What `into` decoded once `call` succeeded: the call's error, or the value.
template <class T>
Result<T> decoded(const Result<void>& called, std::optional<T>& out, const std::string& action) {
  if (!called) return fail(called.error());
  if (!out) return fail(ErrorCode::Internal, action + ": no answer was decoded");
  return std::move(*out);
}

}  // namespace

std::string resultLabel(ErrorCode code) {
  switch (code) {
    case ErrorCode::Transient:
      return "transient";
    case ErrorCode::Throttled:
      return "throttled";
    case ErrorCode::NotFound:
      return "not_found";
    case ErrorCode::Conflict:
      return "conflict";
    case ErrorCode::Invalid:
      return "invalid";
    case ErrorCode::Permission:
      return "permission";
    case ErrorCode::Gone:
      return "gone";
    case ErrorCode::Internal:
      return "internal";
  }
  return "internal";
}

CurlEc2Client::CurlEc2Client(Ec2ClientConfig config, CredentialProvider& credentials,
                             const Clock& clock, Sleeper& sleeper, std::uint64_t seed)
    : config_(std::move(config)),
      credentials_(credentials),
      clock_(clock),
      sleeper_(sleeper),
      limiter_(config_.qps, config_.burst, clock, sleeper),
      health_(clock),
      backoff_(config_.backoffBase, config_.backoffCap, seed) {}

Result<std::string> CurlEc2Client::call(const std::string& action, const Params& params) {
  std::optional<std::string> body;
  auto r = call(action, params, into(body, [&action](std::string_view b) -> Result<std::string> {
                  if (auto ok = checkEc2Response(action, b); !ok) return fail(ok.error());
                  return std::string(b);
                }));
  return decoded(r, body, action);
}

namespace {

std::string queryBody(const std::string& action, const CurlEc2Client::Params& params) {
  std::string body = "Action=" + action + "&Version=2016-11-15";
  for (const auto& [key, value] : params)
    body += "&" + percentEncode(key) + "=" + percentEncode(value);
  return body;
}

}  // namespace

Result<void> CurlEc2Client::call(const std::string& action, const Params& params,
                                 const Accept& accept) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string body = queryBody(action, params);
  backoff_.reset();
  char invocation[17];
  std::snprintf(invocation, sizeof invocation, "%016llx",
                static_cast<unsigned long long>(invocationRng_()));
  Error last{ErrorCode::Internal, action + ": no attempt made"};
  for (int attempt = 0; attempt < config_.maxAttempts; ++attempt) {
    if (attempt > 0) sleeper_.sleepFor(backoff_.next());
    limiter_.acquire();
    auto creds = credentialsForAttempt();
    if (!creds) {
      counters_.result(action, resultLabel(creds.error().code));
      return fail(creds.error());
    }
    auto failed = attemptOnce(action, signedRequest(body, *creds, invocation, attempt), accept);
    if (!failed) {
      counters_.result(action, "success");
      return {};
    }
    last = std::move(*failed);
    if (last.code == ErrorCode::Throttled) limiter_.onThrottled();
    if (!last.retryable()) break;
  }
  counters_.result(action, resultLabel(last.code));
  return fail(std::move(last));
}

HttpRequest CurlEc2Client::signedRequest(const std::string& body, const Credentials& creds,
                                         const char* invocation, int attempt) const {
  HttpRequest request;
  request.method = "POST";
  request.url = config_.endpoint + "/";
  request.body = body;
  request.connectTimeout = config_.connectTimeout;
  request.timeout = config_.timeout;
  request.maxBodyBytes = kEc2MaxBodyBytes;
  request.headers.push_back("Content-Type: application/x-www-form-urlencoded; charset=utf-8");
  // The AWS SDKs' retry headers: which call this is and which attempt of it, so a proxy or a
  // server log can tell a client retry from a new call.
  request.headers.push_back(std::string("amz-sdk-invocation-id: ") + invocation);
  request.headers.push_back("amz-sdk-request: attempt=" + std::to_string(attempt + 1) +
                            "; max=" + std::to_string(config_.maxAttempts));
  request.awsSigV4 = "aws:amz:" + config_.region + ":ec2";
  request.awsAccessKeyId = creds.accessKeyId;
  request.awsSecretAccessKey = creds.secretAccessKey;
  if (!creds.sessionToken.empty()) {
    request.headers.push_back("X-Amz-Security-Token: " + creds.sessionToken);
  }
  return request;
}

std::optional<Error> CurlEc2Client::attemptOnce(const std::string& action,
                                                const HttpRequest& request, const Accept& accept) {
  counters_.attempt(action);
  // Per attempt, not per call: EC2's answer time, without our backoff and token-bucket waits
  // (eni_agent_aws_api_calls_total already counts calls by their final result).
  const TimePoint sent = clock_.now();
  auto response = http_.perform(request);
  counters_.duration(action, std::chrono::duration<double>(clock_.now() - sent).count());
  if (!response) return Error{ErrorCode::Transient, action + ": " + response.error().message};
  if (response->status < 200 || response->status >= 300) {
    Error refused = decodeEc2Error(action, response->status, response->body);
    health_.recordRefusal(refused, false);
    return refused;
  }
  auto accepted = accept(response->body);
  if (!accepted) {
    Error rejected = std::move(accepted.error());
    rejected.httpStatus = response->status;
    return rejected;
  }
  limiter_.onSuccess();
  health_.recordSuccess();
  return std::nullopt;
}

Result<Credentials> CurlEc2Client::credentialsForAttempt() {
  const TimePoint now = clock_.now();
  if (health_.refused() && (!credentialsForgotten_ ||
                            now - *credentialsForgotten_ >= config_.refusedCredentialsRefresh)) {
    credentials_.forget();
    credentialsForgotten_ = now;
  }
  health_.recordCall();
  auto creds = credentials_.credentials();
  if (!creds) health_.recordRefusal(creds.error(), true);
  return creds;
}

Result<std::vector<NetworkInterface>> CurlEc2Client::describeNetworkInterfaces(
    const std::vector<std::string>& ids, const std::vector<Filter>& filters) {
  std::vector<NetworkInterface> out;
  std::string nextToken;
  do {
    Params params;
    addList(params, "NetworkInterfaceId", ids);
    addFilters(params, filters);
    // EC2 refuses MaxResults together with explicit IDs.
    if (ids.empty()) params.emplace_back("MaxResults", std::to_string(config_.describePageSize));
    if (!nextToken.empty()) params.emplace_back("NextToken", nextToken);
    std::optional<NetworkInterfacePage> page;
    auto r = decoded(
        call("DescribeNetworkInterfaces", params, into(page, decodeDescribeNetworkInterfaces)),
        page, "DescribeNetworkInterfaces");
    if (!r) return fail(r.error());
    for (auto& eni : r->interfaces) out.push_back(std::move(eni));
    nextToken = r->nextToken;
  } while (!nextToken.empty());
  return out;
}

Result<void> CurlEc2Client::createTags(const std::vector<std::string>& resources,
                                       const std::vector<Tag>& tags) {
  Params params;
  addList(params, "ResourceId", resources);
  for (std::size_t i = 0; i < tags.size(); ++i) {
    params.emplace_back("Tag." + std::to_string(i + 1) + ".Key", tags[i].key);
    params.emplace_back("Tag." + std::to_string(i + 1) + ".Value", tags[i].value);
  }
  return call("CreateTags", params,
              [](std::string_view body) { return decodeReturnTrue("CreateTags", body); });
}

Result<void> CurlEc2Client::deleteTags(const std::vector<std::string>& resources,
                                       const std::vector<Tag>& tags) {
  Params params;
  addList(params, "ResourceId", resources);
  for (std::size_t i = 0; i < tags.size(); ++i) {
    params.emplace_back("Tag." + std::to_string(i + 1) + ".Key", tags[i].key);
    if (!tags[i].value.empty())
      params.emplace_back("Tag." + std::to_string(i + 1) + ".Value", tags[i].value);
  }
  return call("DeleteTags", params,
              [](std::string_view body) { return decodeReturnTrue("DeleteTags", body); });
}

Result<NetworkInterface> CurlEc2Client::createNetworkInterface(const CreateEniRequest& request) {
  Params params{{"SubnetId", request.subnetId}};
  if (!request.description.empty()) params.emplace_back("Description", request.description);
  addList(params, "SecurityGroupId", request.securityGroupIds);
  if (!request.clientToken.empty()) params.emplace_back("ClientToken", request.clientToken);
  if (!request.tags.empty()) {
    params.emplace_back("TagSpecification.1.ResourceType", "network-interface");
    for (std::size_t i = 0; i < request.tags.size(); ++i) {
      const std::string p = "TagSpecification.1.Tag." + std::to_string(i + 1);
      params.emplace_back(p + ".Key", request.tags[i].key);
      params.emplace_back(p + ".Value", request.tags[i].value);
    }
  }
  std::optional<NetworkInterface> created;
  auto r = call("CreateNetworkInterface", params, into(created, decodeCreateNetworkInterface));
  return decoded(r, created, "CreateNetworkInterface");
}

Result<std::string> CurlEc2Client::attachNetworkInterface(const std::string& eniId,
                                                          const std::string& instanceId,
                                                          std::int64_t deviceIndex) {
  std::optional<std::string> attachmentId;
  auto r = call("AttachNetworkInterface",
                {{"NetworkInterfaceId", eniId},
                 {"InstanceId", instanceId},
                 {"DeviceIndex", std::to_string(deviceIndex)}},
                into(attachmentId, decodeAttachNetworkInterface));
  return decoded(r, attachmentId, "AttachNetworkInterface");
}

Result<void> CurlEc2Client::detachNetworkInterface(const std::string& attachmentId, bool force) {
  return call(
      "DetachNetworkInterface",
      {{"AttachmentId", attachmentId}, {"Force", force ? "true" : "false"}},
      [](std::string_view body) { return decodeReturnTrue("DetachNetworkInterface", body); });
}

Result<void> CurlEc2Client::deleteNetworkInterface(const std::string& eniId) {
  return call("DeleteNetworkInterface", {{"NetworkInterfaceId", eniId}}, [](std::string_view body) {
    return decodeReturnTrue("DeleteNetworkInterface", body);
  });
}

Result<void> CurlEc2Client::setDeleteOnTermination(const std::string& eniId,
                                                   const std::string& attachmentId,
                                                   bool deleteOnTermination) {
  return call("ModifyNetworkInterfaceAttribute",
              {{"NetworkInterfaceId", eniId},
               {"Attachment.AttachmentId", attachmentId},
               {"Attachment.DeleteOnTermination", deleteOnTermination ? "true" : "false"}},
              [](std::string_view body) {
                return decodeReturnTrue("ModifyNetworkInterfaceAttribute", body);
              });
}

Result<std::vector<Subnet>> CurlEc2Client::describeSubnets(const std::vector<std::string>& ids,
                                                           const std::vector<Filter>& filters) {
  Params params;
  addList(params, "SubnetId", ids);
  addFilters(params, filters);
  std::optional<std::vector<Subnet>> subnets;
  auto r = call("DescribeSubnets", params, into(subnets, decodeDescribeSubnets));
  return decoded(r, subnets, "DescribeSubnets");
}

Result<std::vector<SecurityGroup>> CurlEc2Client::describeSecurityGroups(
    const std::vector<std::string>& ids, const std::vector<Filter>& filters) {
  Params params;
  addList(params, "GroupId", ids);
  addFilters(params, filters);
  std::optional<std::vector<SecurityGroup>> groups;
  auto r = call("DescribeSecurityGroups", params, into(groups, decodeDescribeSecurityGroups));
  return decoded(r, groups, "DescribeSecurityGroups");
}

Result<Instance> CurlEc2Client::describeInstance(const std::string& instanceId) {
  std::optional<std::vector<Instance>> instances;
  auto r = decoded(call("DescribeInstances", {{"InstanceId.1", instanceId}},
                        into(instances, decodeDescribeInstances)),
                   instances, "DescribeInstances");
  if (!r) return fail(r.error());
  if (r->empty()) return fail(ErrorCode::NotFound, "DescribeInstances: no instance " + instanceId);
  return std::move(r->front());
}

}  // namespace eni
