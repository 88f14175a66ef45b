#include "ec2/ec2_xml.h"

#include <ctime>

#include <pugixml.hpp>

namespace eni {
namespace {

std::string preview(std::string_view body) {
  std::string out(body.substr(0, 120));
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

// A wrong answer that came with a 2xx status is the endpoint's fault (a proxy's error page, a
// captive portal, another API on that port), not the request's: Transient, so it is retried and
// never read as an empty or successful answer.
// The start of the body goes into the message, unless it may hold credentials (STS).
tl::unexpected<Error> wrongAnswer(std::string_view action, const std::string& what,
                                  std::string_view body, bool showBody = true) {
  return fail(ErrorCode::Transient,
              std::string(action) + ": " + what +
                  "; check the endpoint (AWS_ENDPOINT_URL*) and any proxy on the way" +
                  (showBody ? ": " + preview(body) : std::string()));
}

std::string_view localName(const char* name) {
  const std::string_view full(name);
  const auto colon = full.find(':');
  return colon == std::string_view::npos ? full : full.substr(colon + 1);
}

// The document of `action`'s answer, whose root element must be <ActionResponse>.
Result<pugi::xml_document> load(std::string_view body, std::string_view action,
                                bool showBody = true) {
  pugi::xml_document doc;
  const auto parsed =
      doc.load_buffer(body.data(), body.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed || !doc.document_element()) {
    return wrongAnswer(action, std::string("the answer is not XML (") + parsed.description() + ")",
                       body, showBody);
  }
  const std::string expected = std::string(action) + "Response";
  const std::string_view root = localName(doc.document_element().name());
  if (root != expected) {
    return wrongAnswer(
        action,
        "the answer is not a " + expected + " (its root element is <" + std::string(root) + ">)",
        body, showBody);
  }
  return doc;
}

// A list element the answer always carries, empty or not: without it, "none" cannot be told
// from a truncated or foreign answer.
Result<pugi::xml_node> listOf(const pugi::xml_node& root, const char* name, std::string_view action,
                              std::string_view body) {
  const auto node = root.child(name);
  if (!node) return wrongAnswer(action, std::string("the answer has no <") + name + ">", body);
  return node;
}

std::string text(const pugi::xml_node& node, const char* child) {
  return node.child(child).text().as_string();
}

std::vector<std::string> items(const pugi::xml_node& set, const char* field) {
  std::vector<std::string> out;
  for (const auto& item : set.children("item")) {
    std::string v = item.child(field).text().as_string();
    if (!v.empty()) out.push_back(std::move(v));
  }
  return out;
}

std::vector<Tag> tags(const pugi::xml_node& node) {
  std::vector<Tag> out;
  for (const auto& item : node.child("tagSet").children("item")) {
    out.push_back({text(item, "key"), text(item, "value")});
  }
  return out;
}

NetworkInterface networkInterface(const pugi::xml_node& n) {
  NetworkInterface eni;
  eni.id = text(n, "networkInterfaceId");
  eni.subnetId = text(n, "subnetId");
  eni.vpcId = text(n, "vpcId");
  eni.availabilityZone = text(n, "availabilityZone");
  eni.description = text(n, "description");
  eni.status = text(n, "status");
  eni.interfaceType = text(n, "interfaceType");
  eni.macAddress = text(n, "macAddress");
  eni.privateIpAddress = text(n, "privateIpAddress");
  eni.privateIpAddresses = items(n.child("privateIpAddressesSet"), "privateIpAddress");
  eni.ipv4Prefixes = items(n.child("ipv4PrefixSet"), "ipv4Prefix");
  eni.ipv6Addresses = items(n.child("ipv6AddressesSet"), "ipv6Address");
  eni.securityGroupIds = items(n.child("groupSet"), "groupId");
  if (const auto a = n.child("attachment"); a) {
    EniAttachment att;
    att.attachmentId = text(a, "attachmentId");
    att.instanceId = text(a, "instanceId");
    att.deviceIndex = a.child("deviceIndex").text().as_llong(-1);
    att.status = text(a, "status");
    att.deleteOnTermination = a.child("deleteOnTermination").text().as_bool();
    eni.attachment = att;
  }
  eni.tags = tags(n);
  return eni;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool startsWith(std::string_view s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

ErrorCode classifyEc2Code(std::string_view code, long httpStatus) {
  if (code == "RequestLimitExceeded" || code == "Throttling" || code == "ThrottlingException" ||
      code == "RequestThrottled" || code == "RequestThrottledException") {
    return ErrorCode::Throttled;
  }
  if (endsWith(code, ".NotFound") || endsWith(code, "NotFound")) return ErrorCode::NotFound;
  if (code == "UnauthorizedOperation" || code == "AuthFailure" || code == "InvalidClientTokenId" ||
      code == "SignatureDoesNotMatch" || code == "AccessDenied" ||
      code == "AccessDeniedException" || code == "ExpiredToken" || code == "InvalidToken" ||
      code == "OptInRequired") {
    return ErrorCode::Permission;
  }
  if (startsWith(code, "InvalidParameter") || code == "MissingParameter" ||
      endsWith(code, ".Malformed") || code == "UnknownParameter" || code == "InvalidAction" ||
      code == "InvalidFilter" || code == "IdempotentParameterMismatch") {
    return ErrorCode::Invalid;
  }
  if (code == "IncorrectState" || endsWith(code, ".InUse") || code == "DependencyViolation" ||
      startsWith(code, "InvalidNetworkInterface.") || code == "OperationNotPermitted") {
    return ErrorCode::Conflict;
  }
  if (httpStatus >= 500 || code == "InternalError" || code == "Unavailable" ||
      code == "ServiceUnavailable" || code == "InternalFailure") {
    return ErrorCode::Transient;
  }
  return ErrorCode::Invalid;
}

Error decodeEc2Error(const std::string& action, long httpStatus, std::string_view body) {
  pugi::xml_document doc;
  const bool xml = doc.load_buffer(body.data(), body.size()) && doc.document_element();
  pugi::xml_node error;
  std::string requestId;
  if (xml) {
    const pugi::xml_node root = doc.document_element();
    error = root.child("Errors").child("Error");
    if (!error) error = root.child("Error");  // STS: <ErrorResponse><Error>
    requestId = root.child("RequestID").text().as_string();
    if (requestId.empty()) requestId = root.child("RequestId").text().as_string();
  }
  if (!error) {
    Error e{httpStatus >= 500 ? ErrorCode::Transient : ErrorCode::Internal,
            action + ": HTTP " + std::to_string(httpStatus) +
                " with a body that is not an EC2 error (check the request's filters and "
                "parameters): " +
                preview(body)};
    e.httpStatus = httpStatus;
    return e;
  }
  const std::string code = error.child("Code").text().as_string();
  Error e{classifyEc2Code(code, httpStatus),
          action + ": " + error.child("Message").text().as_string()};
  e.httpStatus = httpStatus;
  e.awsCode = code;
  e.requestId = requestId;
  return e;
}

Result<void> checkEc2Response(std::string_view action, std::string_view body) {
  auto doc = load(body, action);
  if (!doc) return fail(doc.error());
  return {};
}

Result<NetworkInterfacePage> decodeDescribeNetworkInterfaces(std::string_view body) {
  constexpr std::string_view kAction = "DescribeNetworkInterfaces";
  auto doc = load(body, kAction);
  if (!doc) return fail(doc.error());
  const auto root = doc->document_element();
  auto set = listOf(root, "networkInterfaceSet", kAction, body);
  if (!set) return fail(set.error());
  NetworkInterfacePage page;
  for (const auto& item : set->children("item")) page.interfaces.push_back(networkInterface(item));
  page.nextToken = text(root, "nextToken");
  return page;
}

Result<NetworkInterface> decodeCreateNetworkInterface(std::string_view body) {
  constexpr std::string_view kAction = "CreateNetworkInterface";
  auto doc = load(body, kAction);
  if (!doc) return fail(doc.error());
  const auto node = doc->document_element().child("networkInterface");
  if (!node || text(node, "networkInterfaceId").empty())
    return wrongAnswer(kAction, "no networkInterface in the answer", body);
  return networkInterface(node);
}

Result<std::string> decodeAttachNetworkInterface(std::string_view body) {
  constexpr std::string_view kAction = "AttachNetworkInterface";
  auto doc = load(body, kAction);
  if (!doc) return fail(doc.error());
  std::string id = text(doc->document_element(), "attachmentId");
  if (id.empty()) return wrongAnswer(kAction, "no attachmentId in the answer", body);
  return id;
}

Result<void> decodeReturnTrue(const std::string& action, std::string_view body) {
  auto doc = load(body, action);
  if (!doc) return fail(doc.error());
  // EC2 always answers <return>true</return>; moto, and the emulators built on it, leave it out.
  // So a missing one passes (the root element already says whose answer this is) and only a
  // <return> that is not true is refused.
  const auto ret = doc->document_element().child("return");
  if (ret && !ret.text().as_bool()) {
    return wrongAnswer(
        action, "the answer says <return>" + std::string(ret.text().as_string()) + "</return>",
        body);
  }
  return {};
}

Result<std::vector<Subnet>> decodeDescribeSubnets(std::string_view body) {
  constexpr std::string_view kAction = "DescribeSubnets";
  auto doc = load(body, kAction);
  if (!doc) return fail(doc.error());
  auto set = listOf(doc->document_element(), "subnetSet", kAction, body);
  if (!set) return fail(set.error());
  std::vector<Subnet> out;
  for (const auto& item : set->children("item")) {
    out.push_back({text(item, "subnetId"), text(item, "vpcId"), text(item, "cidrBlock"),
                   text(item, "availabilityZone"), tags(item)});
  }
  return out;
}

Result<std::vector<SecurityGroup>> decodeDescribeSecurityGroups(std::string_view body) {
  constexpr std::string_view kAction = "DescribeSecurityGroups";
  auto doc = load(body, kAction);
  if (!doc) return fail(doc.error());
  auto set = listOf(doc->document_element(), "securityGroupInfo", kAction, body);
  if (!set) return fail(set.error());
  std::vector<SecurityGroup> out;
  for (const auto& item : set->children("item")) {
    out.push_back({text(item, "groupId"), text(item, "groupName"), text(item, "vpcId")});
  }
  return out;
}

Result<std::vector<Instance>> decodeDescribeInstances(std::string_view body) {
  constexpr std::string_view kAction = "DescribeInstances";
  auto doc = load(body, kAction);
  if (!doc) return fail(doc.error());
  auto set = listOf(doc->document_element(), "reservationSet", kAction, body);
  if (!set) return fail(set.error());
  std::vector<Instance> out;
  for (const auto& reservation : set->children("item")) {
    for (const auto& item : reservation.child("instancesSet").children("item")) {
      Instance inst;
      inst.id = text(item, "instanceId");
      inst.vpcId = text(item, "vpcId");
      inst.subnetId = text(item, "subnetId");
      inst.availabilityZone = item.child("placement").child("availabilityZone").text().as_string();
      for (const auto& n : item.child("networkInterfaceSet").children("item")) {
        inst.networkInterfaces.push_back(networkInterface(n));
      }
      out.push_back(std::move(inst));
    }
  }
  return out;
}

Result<std::chrono::system_clock::time_point> parseIso8601(std::string_view text) {
  std::tm tm{};
  const std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return fail(ErrorCode::Invalid, "not an ISO 8601 time: " + s);
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Result<Credentials> decodeAssumeRoleWithWebIdentity(std::string_view body) {
  auto doc = load(body, "AssumeRoleWithWebIdentity", false);
  if (!doc) return fail(doc.error());
  const auto creds =
      doc->document_element().child("AssumeRoleWithWebIdentityResult").child("Credentials");
  Credentials c;
  c.accessKeyId = text(creds, "AccessKeyId");
  c.secretAccessKey = text(creds, "SecretAccessKey");
  c.sessionToken = text(creds, "SessionToken");
  c.source = "web-identity";
  if (c.accessKeyId.empty() || c.secretAccessKey.empty()) {
    return fail(ErrorCode::Transient, "AssumeRoleWithWebIdentity: no credentials in the answer");
  }
  if (auto exp = parseIso8601(text(creds, "Expiration")); exp) c.expiration = *exp;
  return c;
}

}  // namespace eni
