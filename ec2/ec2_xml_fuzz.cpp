// libFuzzer target: every EC2 XML decoder must give a value or a clear error for any body.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ec2/ec2_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)eni::decodeDescribeNetworkInterfaces(body);
  (void)eni::decodeCreateNetworkInterface(body);
  (void)eni::decodeAttachNetworkInterface(body);
  (void)eni::decodeReturnTrue("CreateTags", body);
  (void)eni::decodeDescribeSubnets(body);
  (void)eni::decodeDescribeSecurityGroups(body);
  (void)eni::decodeDescribeInstances(body);
  (void)eni::decodeAssumeRoleWithWebIdentity(body);
  (void)eni::checkEc2Response("CreateVpc", body);
  const eni::Error error = eni::decodeEc2Error("DescribeNetworkInterfaces", 400, body);
  if (error.message.empty()) __builtin_trap();  // every error says why
  return 0;
}
