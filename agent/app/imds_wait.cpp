// Waiting for IMDS at start: the region comes from IMDS unless --region or AWS_REGION gives it.
#include "agent/app/imds_wait.h"

#include <functional>
#include <memory>

#include "agent/base/backoff.h"
#include "agent/base/executor.h"
#include "agent/base/log.h"
#include "agent/config/region.h"
#include "agent/obs/readiness.h"

std::optional<std::string> eni::waitForRegion(EventLoop& loop, Imds& imds, HealthServer* health,
                                              const std::string& endpoint) {
  WorkerThread worker(loop);
  Backoff backoff(Duration(500), Duration(30000));
  std::optional<std::string> region;
  // The detail names the endpoint, so it goes to the log only; /readyz shows "imds: <code>".
  std::string reason = "ReadingRegion: reading the region from IMDS at " + endpoint;
  Readiness readiness;
  readiness.addCheck("imds", [&reason] { return reason; });
  eni::TimerId retryTimer = 0;
  eni::TimerId beatTimer = 0;
  std::function<void()> attempt;
  attempt = [&] {
    auto identity = std::make_shared<eni::Result<eni::InstanceIdentity>>(
        eni::fail(eni::ErrorCode::Internal, "not asked"));
    worker.run([&imds, identity] { *identity = imds.identity(); },
               [&, identity] {
                 // A captive portal or a broken proxy answers HTML: never a region to sign with.
                 Result<void> valid = fail(ErrorCode::Internal, "");
                 if (*identity)
                   valid = checkRegionName((*identity)->region, "IMDS placement/region");
                 if (*identity && valid) {
                   region = (*identity)->region;
                   loop.stop();
                   return;
                 }
                 const std::string error =
                     *identity ? valid.error().message : identity->error().describe();
                 const auto delay = backoff.next();
                 reason = std::string(*identity ? "InvalidRegion" : "ImdsUnreachable") +
                          ": cannot read the region from IMDS at " + endpoint + " (" + error +
                          "); set --region or AWS_REGION to skip IMDS";
                 eni::logWarn("cannot read the AWS region from IMDS, will retry",
                              {{"error", error},
                               {"retry_in_ms", static_cast<std::int64_t>(delay.count())},
                               {"attempt", backoff.attempt()}});
                 retryTimer = loop.runAfter(delay, attempt);
               });
  };
  std::function<void()> beat;
  beat = [&] {
    if (health != nullptr) {
      health->heartbeat();
      health->setReady(readiness.report());
    }
    beatTimer = loop.runAfter(eni::Duration(1000), beat);
  };
  beat();
  attempt();
  loop.run();
  // The timers capture this frame: none may outlive it.
  loop.cancel(retryTimer);
  loop.cancel(beatTimer);
  if (!region) return std::nullopt;
  eni::logInfo("region read from IMDS", {{"region", *region}});
  return region;
}
