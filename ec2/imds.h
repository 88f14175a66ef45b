#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/base/error.h"
#include "ec2/aws_types.h"

namespace eni {

/// One network interface as IMDS describes it under network/interfaces/macs/<mac>/.
struct ImdsInterface {
  std::string mac;
  std::string interfaceId;
  std::int64_t deviceNumber = -1;
  std::vector<std::string> localIpv4s;
  std::vector<std::string> ipv4Prefixes;
  std::vector<std::string> ipv6s;
  std::vector<std::string> ipv6Prefixes;
  std::string subnetId;
  std::string vpcId;
  std::vector<std::string> securityGroupIds;
};

/// Every interface of this instance, with the lookup the tagger needs.
struct InterfaceMap {
  std::vector<ImdsInterface> interfaces;
  /// Interfaces IMDS listed but could not describe on this read, by MAC, with the reason: IMDS is
  /// eventually consistent, and a listed key of a just-changed interface can answer 404. They are
  /// not in `interfaces`; a later read shows them again. Callers that need every interface (to
  /// trust records, to pick a free device index) read EC2 for these.
  std::map<std::string, std::string> skippedMacs;
  /// The interface that holds `ip`: one of its addresses, or inside one of its delegated
  /// prefixes (prefix delegation). nullptr when none does.
  const ImdsInterface* findByIp(const std::string& ip) const;
  const ImdsInterface* findByMac(const std::string& mac) const;
};

struct InstanceIdentity {
  std::string instanceId;
  std::string region;
  std::string availabilityZone;
  std::string primaryMac;
};

/// The instance metadata service, always IMDSv2. Blocking calls with short timeouts; call from
/// a worker thread. Errors: NotFound for a path IMDS does not have, Transient when it does not
/// answer, Invalid when IMDS is disabled by AWS_EC2_METADATA_DISABLED. Thread-safe.
class Imds {
 public:
  virtual ~Imds() = default;
  /// The raw text at latest/meta-data/<path>.
  [[nodiscard]] virtual Result<std::string> get(const std::string& path) = 0;
  [[nodiscard]] virtual Result<InstanceIdentity> identity() = 0;
  /// The whole interface map in one call (one request per mac and field).
  [[nodiscard]] virtual Result<InterfaceMap> interfaces() = 0;
  /// Instance-profile credentials (iam/security-credentials/<role>).
  [[nodiscard]] virtual Result<Credentials> roleCredentials() = 0;
};

/// Builds the interface map from IMDS reads of latest/meta-data/<path>. A 404 (NotFound) on an
/// optional key (ipv4-prefix, ipv6s, ipv6-prefix, security-group-ids, subnet-id, vpc-id) reads as
/// empty; a 404 on a MAC's directory, local-ipv4s, interface-id or device-number (or a
/// device-number that is not a number) skips that MAC (InterfaceMap::skippedMacs). Any other
/// failure, and any failure of the MAC list itself, fails the whole map.
[[nodiscard]] Result<InterfaceMap> readInterfaceMap(
    const std::function<Result<std::string>(const std::string& path)>& get);

/// Splits an IMDS list answer ("a\nb/\n") into entries, trailing slashes removed.
std::vector<std::string> splitImdsList(const std::string& text);

}  // namespace eni
