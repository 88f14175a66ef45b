#pragma once

#include <optional>
#include <string>

#include "agent/base/event_loop.h"
#include "agent/obs/health_server.h"
#include "ec2/imds.h"

namespace eni {

/// Reads the region from IMDS, retrying with jittered backoff while IMDS is unreachable (at boot
/// it may come up after the agent). The loop keeps turning, so /healthz stays live and /readyz
/// says that the agent waits for IMDS. Returns nullopt when a signal stopped the loop first.
/// Both run modes use it before they build their AWS clients.
std::optional<std::string> waitForRegion(EventLoop& loop, Imds& imds, HealthServer* health,
                                         const std::string& endpoint);

}  // namespace eni
