#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace eni {

struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
};

/// An EC2 API filter: Name with one or more values.
struct Filter {
  std::string name;
  std::vector<std::string> values;
};

struct EniAttachment {
  std::string attachmentId;
  std::string instanceId;
  std::int64_t deviceIndex = -1;
  std::string status;  // attaching, attached, detaching, detached
  bool deleteOnTermination = false;
};

struct NetworkInterface {
  std::string id;
  std::string subnetId;
  std::string vpcId;
  std::string availabilityZone;
  std::string description;
  std::string status;  // available, in-use, ...
  // interface, trunk, branch (security groups for pods), efa, ...; empty when EC2 did not say.
  std::string interfaceType;
  std::string macAddress;
  std::string privateIpAddress;
  std::vector<std::string> privateIpAddresses;
  std::vector<std::string> ipv4Prefixes;
  std::vector<std::string> ipv6Addresses;
  std::vector<std::string> securityGroupIds;
  std::optional<EniAttachment> attachment;
  std::vector<Tag> tags;
};

struct Subnet {
  std::string id;
  std::string vpcId;
  std::string cidrBlock;
  std::string availabilityZone;
  std::vector<Tag> tags;
};

struct SecurityGroup {
  std::string id;
  std::string name;
  std::string vpcId;
};

struct Instance {
  std::string id;
  std::string vpcId;
  std::string subnetId;
  std::string availabilityZone;
  std::vector<NetworkInterface> networkInterfaces;  // with their attachments' device indexes
};

/// AWS credentials. Never log or format these; there is deliberately no operator<<.
struct Credentials {
  std::string accessKeyId;
  std::string secretAccessKey;
  std::string sessionToken;
  std::optional<std::chrono::system_clock::time_point> expiration;
  std::string source;  // "environment", "web-identity", "container", "imds": safe to log
};

}  // namespace eni
