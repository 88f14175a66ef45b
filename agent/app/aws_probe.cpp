#include "agent/app/aws_probe.h"

#include <cstdlib>

#include "agent/base/log.h"

namespace eni {

void AwsProbe::tick() {
  if (inFlight_ || !health_.probeDue(interval_)) return;
  inFlight_ = true;
  ++probes_;
  logInfo("AWS refused the credentials; checking them with one read",
          {{"reason", health_.problem()},
           {"every_s", static_cast<std::int64_t>(interval_.count() / 1000)}});
  // The work must not touch `this`: a worker stopping after the loop still finishes its job.
  worker_.run([ec2 = &ec2_] { (void)ec2->describeNetworkInterfaces({}, awsProbeFilter()); },
              [this] { inFlight_ = false; });
}

Duration awsProbeInterval(const EnvLookup& env) {
  if (auto ms = env("ENI_AGENT_AWS_PROBE_INTERVAL_MS"); ms && !ms->empty()) {
    const long long n = std::atoll(ms->c_str());
    if (n > 0) return Duration(n);
  }
  return Duration(60000);
}

}  // namespace eni
