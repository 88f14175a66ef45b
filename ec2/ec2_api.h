#pragma once

#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/error.h"
#include "ec2/aws_types.h"

namespace eni {

struct CreateEniRequest {
  std::string subnetId;
  std::vector<std::string> securityGroupIds;
  std::string description;
  std::string clientToken;  // idempotency (real EC2 honours it; moto does not)
  std::vector<Tag> tags;    // TagSpecifications for the network-interface
};

/// The EC2 actions the agent uses. Blocking: every call waits for the client-side token bucket,
/// retries Transient and Throttled failures with full-jitter backoff, and has a timeout; call
/// from a worker thread. Errors carry the AWS code and request ID. Thread-safe.
class Ec2Api {
 public:
  virtual ~Ec2Api() = default;

  /// How long until the client-side rate limit lets `calls` calls through without waiting; 0 when
  /// it does now, or when there is none. A caller that would only wait inside its calls can wait
  /// before it starts instead, and take in what comes meanwhile.
  virtual Duration untilCalls(int calls) const {
    (void)calls;
    return Duration(0);
  }

  /// By IDs and/or filters; follows NextToken to the end.
  [[nodiscard]] virtual Result<std::vector<NetworkInterface>> describeNetworkInterfaces(
      const std::vector<std::string>& ids, const std::vector<Filter>& filters) = 0;
  /// One call for up to 1000 resources.
  [[nodiscard]] virtual Result<void> createTags(const std::vector<std::string>& resources,
                                                const std::vector<Tag>& tags) = 0;
  /// Removes these keys; a tag with a value removes the key only while it has that value.
  [[nodiscard]] virtual Result<void> deleteTags(const std::vector<std::string>& resources,
                                                const std::vector<Tag>& tags) = 0;
  [[nodiscard]] virtual Result<NetworkInterface> createNetworkInterface(
      const CreateEniRequest& request) = 0;
  /// Returns the attachment ID.
  [[nodiscard]] virtual Result<std::string> attachNetworkInterface(const std::string& eniId,
                                                                   const std::string& instanceId,
                                                                   std::int64_t deviceIndex) = 0;
  [[nodiscard]] virtual Result<void> detachNetworkInterface(const std::string& attachmentId,
                                                            bool force) = 0;
  [[nodiscard]] virtual Result<void> deleteNetworkInterface(const std::string& eniId) = 0;
  /// ModifyNetworkInterfaceAttribute on the attachment's DeleteOnTermination.
  [[nodiscard]] virtual Result<void> setDeleteOnTermination(const std::string& eniId,
                                                            const std::string& attachmentId,
                                                            bool deleteOnTermination) = 0;
  [[nodiscard]] virtual Result<std::vector<Subnet>> describeSubnets(
      const std::vector<std::string>& ids, const std::vector<Filter>& filters) = 0;
  [[nodiscard]] virtual Result<std::vector<SecurityGroup>> describeSecurityGroups(
      const std::vector<std::string>& ids, const std::vector<Filter>& filters) = 0;
  /// The instance with its ENIs and their device indexes; NotFound when it does not exist.
  [[nodiscard]] virtual Result<Instance> describeInstance(const std::string& instanceId) = 0;
};

}  // namespace eni
