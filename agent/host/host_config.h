#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/error.h"
#include "agent/eni/tags.h"

namespace eni {

/// One secondary ENI that host.json asks for on this instance.
struct HostInterface {
  std::string subnetId;    // exactly one of subnetId and subnetName is set
  std::string subnetName;  // the subnet's Name tag, looked up in the instance's VPC
  std::vector<std::string> securityGroupIds;  // empty: the VPC's default group
  std::int64_t deviceIndex = 1;               // 1 or more, unique in the file
  std::uint32_t mtu = 0;                      // 0: leave the link's MTU alone
  std::string description;
  bool deleteOnTermination = true;
  bool configureAddress = false;  // put the ENI's primary IPv4 on the link
  bool policyRouting = false;     // table 10000+deviceIndex and a `from <ip>` rule
  bool operator==(const HostInterface&) const = default;

  /// The key that names this interface in ownership tags and in the state file:
  /// "host-<deviceIndex>".
  std::string key() const;
};

/// /etc/eni-agent/host.json: the desired state of host mode.
struct HostConfig {
  std::vector<HostInterface> interfaces;
  TagSet tags;  // for every ENI of this instance, owned and diffed like pod tags
  bool operator==(const HostConfig&) const = default;
};

/// Parses and validates host.json. Any problem is Invalid and names the field and what to fix,
/// e.g. "interfaces[1].mtu: 12000 is outside 68-9001"; unknown keys are errors naming the key.
/// Every problem found is reported, separated by "; ". Pure.
[[nodiscard]] Result<HostConfig> parseHostConfig(std::string_view text);

/// Reads and parses `path`; errors start with the path.
[[nodiscard]] Result<HostConfig> loadHostConfig(const std::string& path);

}  // namespace eni
