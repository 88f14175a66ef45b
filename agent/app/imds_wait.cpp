// Waiting for IMDS at start: the region comes from IMDS unless --region or AWS_REGION gives it.
#include "agent/app/imds_wait.h"

#include <memory>

#include "agent/base/backoff.h"
#include "agent/base/log.h"
#include "agent/base/timer.h"
#include "agent/base/worker_pool.h"
#include "agent/config/region.h"
#include "agent/obs/readiness.h"

namespace eni {
namespace {

// One identity read at a time on a worker, retried with backoff; a beat every second keeps
// /healthz live and /readyz saying why the agent is not ready yet.
class RegionWait {
 public:
  RegionWait(EventLoop& loop, Imds& imds, HealthServer* health, const std::string& endpoint)
      : loop_(loop),
        imds_(imds),
        health_(health),
        endpoint_(endpoint),
        worker_(loop),
        // The detail names the endpoint, so it goes to the log only; /readyz shows "imds: <code>".
        reason_("ReadingRegion: reading the region from IMDS at " + endpoint),
        retry_(loop, [this] { attempt(); }),
        beat_(loop, [this] { beat(); }) {
    readiness_.addCheck("imds", [this] { return reason_; });
  }

  std::optional<std::string> run() {
    beat();
    attempt();
    loop_.run();
    return region_;
  }

 private:
  void attempt() {
    auto identity =
        std::make_shared<Result<InstanceIdentity>>(fail(ErrorCode::Internal, "not asked"));
    worker_.run([this, identity] { *identity = imds_.identity(); },
                [this, identity] { onIdentity(*identity); });
  }

  void onIdentity(const Result<InstanceIdentity>& identity) {
    // A captive portal or a broken proxy answers HTML: never a region to sign with.
    Result<void> valid = fail(ErrorCode::Internal, "");
    if (identity) valid = checkRegionName(identity->region, "IMDS placement/region");
    if (identity && valid) {
      region_ = identity->region;
      loop_.stop();
      return;
    }
    const std::string error = identity ? valid.error().message : identity.error().describe();
    const auto delay = backoff_.next();
    reason_ = std::string(identity ? "InvalidRegion" : "ImdsUnreachable") +
              ": cannot read the region from IMDS at " + endpoint_ + " (" + error +
              "); set --region or AWS_REGION to skip IMDS";
    if (health_ != nullptr) health_->setReady(readiness_.report());
    logWarn("cannot read the AWS region from IMDS, will retry",
            {{"error", error},
             {"retry_in_ms", static_cast<std::int64_t>(delay.count())},
             {"attempt", backoff_.attempt()}});
    retry_.enable(delay);
  }

  void beat() {
    if (health_ != nullptr) {
      health_->heartbeat();
      health_->setReady(readiness_.report());
    }
    beat_.enable(Duration(1000));
  }

  EventLoop& loop_;
  Imds& imds_;
  HealthServer* health_;
  const std::string endpoint_;
  WorkerThread worker_;
  Backoff backoff_{Duration(500), Duration(30000)};
  std::optional<std::string> region_;
  std::string reason_;
  Readiness readiness_;
  Timer retry_;
  Timer beat_;
};

}  // namespace

std::optional<std::string> waitForRegion(EventLoop& loop, Imds& imds, HealthServer* health,
                                         const std::string& endpoint) {
  auto region = RegionWait(loop, imds, health, endpoint).run();
  if (!region) return std::nullopt;
  logInfo("region read from IMDS", {{"region", *region}});
  return region;
}

}  // namespace eni
