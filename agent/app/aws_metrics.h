#pragma once

#include "agent/obs/metrics.h"
#include "ec2/curl_ec2_client.h"
#include "ec2/curl_imds.h"

namespace eni {

/// The AWS part of a metrics snapshot, the same in both run modes: EC2 calls by operation and
/// result, attempt latencies, throttled calls, IMDS requests.
inline void addAwsMetrics(MetricsSnapshot& m, const CurlEc2Client& ec2, const CurlImds& imds) {
  m.awsCalls = ec2.counters().snapshot();
  m.awsDuration = ec2.counters().durations();
  for (const auto& [key, n] : m.awsCalls) {
    if (key.second == "throttled") m.awsThrottled += n;
  }
  m.imdsRequests = imds.requests();
}

}  // namespace eni
