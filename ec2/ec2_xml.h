#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/base/error.h"
#include "ec2/aws_types.h"

namespace eni {

/// Pure decoders of EC2 Query API responses (pugixml). No I/O; fuzzed and unit-tested with the
/// EC2 API reference's sample responses.

/// The typed error of a non-2xx answer: reads Errors/Error/{Code,Message} and RequestID wherever
/// they sit (<Response> or <ErrorResponse>). A body that is not EC2's XML (moto's HTML for an
/// unknown filter, say) still gives a clear error. Transient for 5xx, by code otherwise.
Error decodeEc2Error(const std::string& action, long httpStatus, std::string_view body);
/// The error class of an EC2 error code.
ErrorCode classifyEc2Code(std::string_view code, long httpStatus);

/// Every decoder below first checks that the body is the action's answer: XML whose root element
/// is <ActionResponse>, and, for Describe actions, with its result list (empty or not). Anything
/// else (another root, an HTML page, a truncated body) is Transient with a clear message, never
/// an empty or successful result. The generic check for an action without a decoder:
[[nodiscard]] Result<void> checkEc2Response(std::string_view action, std::string_view body);

struct NetworkInterfacePage {
  std::vector<NetworkInterface> interfaces;
  std::string nextToken;
};
[[nodiscard]] Result<NetworkInterfacePage> decodeDescribeNetworkInterfaces(std::string_view body);
[[nodiscard]] Result<NetworkInterface> decodeCreateNetworkInterface(std::string_view body);
[[nodiscard]] Result<std::string> decodeAttachNetworkInterface(std::string_view body);
/// For actions that answer <return>true</return>: a <return> that is not true is Transient. A
/// missing one passes (moto leaves it out; EC2 always sends it).
[[nodiscard]] Result<void> decodeReturnTrue(const std::string& action, std::string_view body);
[[nodiscard]] Result<std::vector<Subnet>> decodeDescribeSubnets(std::string_view body);
[[nodiscard]] Result<std::vector<SecurityGroup>> decodeDescribeSecurityGroups(
    std::string_view body);
[[nodiscard]] Result<std::vector<Instance>> decodeDescribeInstances(std::string_view body);
/// STS AssumeRoleWithWebIdentity's credentials.
[[nodiscard]] Result<Credentials> decodeAssumeRoleWithWebIdentity(std::string_view body);

/// "2026-11-23T10:00:00Z" (also with fractional seconds) as a time point.
[[nodiscard]] Result<std::chrono::system_clock::time_point> parseIso8601(std::string_view text);

}  // namespace eni
