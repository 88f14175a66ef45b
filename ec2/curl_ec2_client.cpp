#include "ec2/curl_ec2_client.h"

#include <cstdio>

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
  std::lock_guard<std::mutex> lock(mutex_);
  std::string body = "Action=" + action + "&Version=2016-11-15";
  for (const auto& [key, value] : params)
    body += "&" + percentEncode(key) + "=" + percentEncode(value);

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
    HttpRequest request;
    request.method = "POST";
    request.url = config_.endpoint + "/";
    request.body = body;
    request.connectTimeout = config_.connectTimeout;
    request.timeout = config_.timeout;
    request.headers.push_back("Content-Type: application/x-www-form-urlencoded; charset=utf-8");
    // The AWS SDKs' retry headers: which call this is and which attempt of it, so a proxy or a
    // server log can tell a client retry from a new call.
    request.headers.push_back(std::string("amz-sdk-invocation-id: ") + invocation);
    request.headers.push_back("amz-sdk-request: attempt=" + std::to_string(attempt + 1) +
                              "; max=" + std::to_string(config_.maxAttempts));
    request.awsSigV4 = "aws:amz:" + config_.region + ":ec2";
    request.awsAccessKeyId = creds->accessKeyId;
    request.awsSecretAccessKey = creds->secretAccessKey;
    if (!creds->sessionToken.empty()) {
      request.headers.push_back("X-Amz-Security-Token: " + creds->sessionToken);
    }
    counters_.attempt(action);
    // Per attempt, not per call: EC2's answer time, without our backoff and token-bucket waits
    // (eni_agent_aws_api_calls_total already counts calls by their final result).
    const TimePoint sent = clock_.now();
    auto response = http_.perform(request);
    counters_.duration(action, std::chrono::duration<double>(clock_.now() - sent).count());
    if (!response) {
      last = Error{ErrorCode::Transient, action + ": " + response.error().message};
    } else if (response->status >= 200 && response->status < 300) {
      limiter_.onSuccess();
      health_.recordSuccess();
      counters_.result(action, "success");
      return std::move(response->body);
    } else {
      last = decodeEc2Error(action, response->status, response->body);
      health_.recordRefusal(last, false);
    }
    if (last.code == ErrorCode::Throttled) limiter_.onThrottled();
    if (!last.retryable()) break;
  }
  counters_.result(action, resultLabel(last.code));
  return fail(std::move(last));
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
    auto body = call("DescribeNetworkInterfaces", params);
    if (!body) return fail(body.error());
    auto page = decodeDescribeNetworkInterfaces(*body);
    if (!page) return fail(page.error());
    for (auto& eni : page->interfaces) out.push_back(std::move(eni));
    nextToken = page->nextToken;
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
  auto body = call("CreateTags", params);
  if (!body) return fail(body.error());
  return decodeReturnTrue("CreateTags", *body);
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
  auto body = call("DeleteTags", params);
  if (!body) return fail(body.error());
  return decodeReturnTrue("DeleteTags", *body);
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
  auto body = call("CreateNetworkInterface", params);
  if (!body) return fail(body.error());
  return decodeCreateNetworkInterface(*body);
}

Result<std::string> CurlEc2Client::attachNetworkInterface(const std::string& eniId,
                                                          const std::string& instanceId,
                                                          std::int64_t deviceIndex) {
  auto body = call("AttachNetworkInterface", {{"NetworkInterfaceId", eniId},
                                              {"InstanceId", instanceId},
                                              {"DeviceIndex", std::to_string(deviceIndex)}});
  if (!body) return fail(body.error());
  return decodeAttachNetworkInterface(*body);
}

Result<void> CurlEc2Client::detachNetworkInterface(const std::string& attachmentId, bool force) {
  auto body = call("DetachNetworkInterface",
                   {{"AttachmentId", attachmentId}, {"Force", force ? "true" : "false"}});
  if (!body) return fail(body.error());
  return decodeReturnTrue("DetachNetworkInterface", *body);
}

Result<void> CurlEc2Client::deleteNetworkInterface(const std::string& eniId) {
  auto body = call("DeleteNetworkInterface", {{"NetworkInterfaceId", eniId}});
  if (!body) return fail(body.error());
  return decodeReturnTrue("DeleteNetworkInterface", *body);
}

Result<void> CurlEc2Client::setDeleteOnTermination(const std::string& eniId,
                                                   const std::string& attachmentId,
                                                   bool deleteOnTermination) {
  auto body = call("ModifyNetworkInterfaceAttribute",
                   {{"NetworkInterfaceId", eniId},
                    {"Attachment.AttachmentId", attachmentId},
                    {"Attachment.DeleteOnTermination", deleteOnTermination ? "true" : "false"}});
  if (!body) return fail(body.error());
  return decodeReturnTrue("ModifyNetworkInterfaceAttribute", *body);
}

Result<std::vector<Subnet>> CurlEc2Client::describeSubnets(const std::vector<std::string>& ids,
                                                           const std::vector<Filter>& filters) {
  Params params;
  addList(params, "SubnetId", ids);
  addFilters(params, filters);
  auto body = call("DescribeSubnets", params);
  if (!body) return fail(body.error());
  return decodeDescribeSubnets(*body);
}

Result<std::vector<SecurityGroup>> CurlEc2Client::describeSecurityGroups(
    const std::vector<std::string>& ids, const std::vector<Filter>& filters) {
  Params params;
  addList(params, "GroupId", ids);
  addFilters(params, filters);
  auto body = call("DescribeSecurityGroups", params);
  if (!body) return fail(body.error());
  return decodeDescribeSecurityGroups(*body);
}

Result<Instance> CurlEc2Client::describeInstance(const std::string& instanceId) {
  auto body = call("DescribeInstances", {{"InstanceId.1", instanceId}});
  if (!body) return fail(body.error());
  auto instances = decodeDescribeInstances(*body);
  if (!instances) return fail(instances.error());
  if (instances->empty())
    return fail(ErrorCode::NotFound, "DescribeInstances: no instance " + instanceId);
  return std::move(instances->front());
}

}  // namespace eni
