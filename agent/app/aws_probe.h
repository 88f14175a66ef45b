#pragma once

#include "agent/base/env.h"
#include "agent/base/executor.h"
#include "ec2/aws_health.h"
#include "ec2/ec2_api.h"

namespace eni {

/// While AWS refuses the agent's credentials and nothing else calls it, one cheap read per
/// `interval` on the AWS worker, so that the agent notices rotated credentials or a refreshed role
/// and becomes ready again. No call while the credentials work. Both run modes use it; tick() runs
/// from their report timer. Loop thread only.
class AwsProbe {
 public:
  AwsProbe(Ec2Api& ec2, const AwsHealth& health, Executor& worker, Duration interval)
      : ec2_(ec2), health_(health), worker_(worker), interval_(interval) {}

  void tick();
  std::uint64_t probes() const { return probes_; }

 private:
  Ec2Api& ec2_;
  const AwsHealth& health_;
  Executor& worker_;
  Duration interval_;
  bool inFlight_ = false;
  std::uint64_t probes_ = 0;
};

/// One minute; ENI_AGENT_AWS_PROBE_INTERVAL_MS shortens it for tests (not a flag: nobody should
/// need to tune it). CurlEc2Client refreshes refused credentials at the same pace.
Duration awsProbeInterval(const EnvLookup& env);

/// The read: DescribeNetworkInterfaces filtered on a tag no ENI carries, one empty page. Its
/// answer is not used; CurlEc2Client records in AwsHealth whether AWS accepted it.
inline const std::vector<Filter>& awsProbeFilter() {
  static const std::vector<Filter> filter{{"tag:eni-agent.io/credentials-check", {"probe"}}};
  return filter;
}

}  // namespace eni
