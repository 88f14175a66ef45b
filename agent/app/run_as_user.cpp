#include "agent/app/run_as_user.h"

#include "agent/base/log.h"
#include "agent/base/privileges.h"

namespace eni {

bool applyRunAsUser(const AgentOptions& options) {
  if (!options.runAsUser) return true;
  auto dropped = dropPrivileges(*options.runAsUser);
  if (!dropped) {
    logError("cannot drop privileges to --run-as-user, not starting",
             {{"run_as_user", toString(*options.runAsUser)}, {"error", dropped.error().message}});
    return false;
  }
  logInfo("dropped privileges", {{"uid", dropped->effectiveUid},
                                 {"gid", dropped->effectiveGid},
                                 {"effective", capabilityNames(dropped->effective)},
                                 {"permitted", capabilityNames(dropped->permitted)},
                                 {"ambient", capabilityNames(dropped->ambient)},
                                 {"bounding", capabilityNames(dropped->bounding)},
                                 {"no_new_privs", dropped->noNewPrivs ? "true" : "false"}});
  return true;
}

bool netlinkOpened(std::initializer_list<Result<void>> opened) {
  for (const auto& result : opened) {
    if (!result) {
      logError("cannot open netlink", {{"error", result.error().message}});
      return false;
    }
  }
  return true;
}

}  // namespace eni
