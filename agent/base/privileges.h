#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "agent/base/error.h"

namespace eni {

/// The user and group of --run-as-user. Numbers only: the image has no passwd entry to look a
/// name up in, and the agent never reads NSS as root.
struct RunAsUser {
  uid_t uid = 0;
  gid_t gid = 0;
  bool operator==(const RunAsUser&) const = default;
};

/// Parses "UID" or "UID:GID" (the GID defaults to the UID). Invalid for names, for 0 (root is
/// not a drop; leave the flag empty to stay as started) and for numbers past 4294967294.
[[nodiscard]] Result<RunAsUser> parseRunAsUser(const std::string& text);

/// "65532:65532".
std::string toString(RunAsUser user);

/// CAP_NET_ADMIN as a capability-set mask: everything the agent keeps.
constexpr std::uint64_t kNetAdminCapability = std::uint64_t{1} << 12;

/// The calling thread's identity and capability sets as the kernel reports them.
struct ProcessPrivileges {
  uid_t realUid = 0, effectiveUid = 0, savedUid = 0;
  gid_t realGid = 0, effectiveGid = 0, savedGid = 0;
  int supplementaryGroups = 0;
  std::uint64_t effective = 0, permitted = 0, inheritable = 0, ambient = 0, bounding = 0;
  bool noNewPrivs = false;
};

/// Reads them (getresuid, getresgid, getgroups, capget, prctl). Internal when a call fails.
[[nodiscard]] Result<ProcessPrivileges> currentPrivileges();

/// Whether `p` is what dropPrivileges promises for `want`: all three UIDs and GIDs, no
/// supplementary group, CAP_NET_ADMIN and nothing else in the effective, permitted and ambient
/// sets, no_new_privs set. Pure. The error (Permission) names the first thing that is off.
[[nodiscard]] Result<void> checkDropped(const ProcessPrivileges& p, RunAsUser want);

/// Switches the whole process to `want`, keeping CAP_NET_ADMIN and nothing else: setgroups(0),
/// setresgid, setresuid with PR_SET_KEEPCAPS, capset (effective = permitted = inheritable =
/// CAP_NET_ADMIN), CAP_NET_ADMIN raised in the ambient set, the rest of the bounding set dropped
/// when CAP_SETPCAP allows it, PR_SET_NO_NEW_PRIVS; then reads everything back and checks it with
/// checkDropped. A process that already is `want` (systemd's User=) only sheds capabilities.
/// Capabilities are per thread, so it must run before any thread starts: Internal otherwise,
/// before anything changes. Permission when CAP_NET_ADMIN is not permitted to start with, when
/// the kernel refuses a step (the message names it and the capability it needs), or when the
/// result does not check. Returns what the process is now.
[[nodiscard]] Result<ProcessPrivileges> dropPrivileges(RunAsUser want);

/// "cap_net_admin,cap_setuid", or "none": a capability set for a log line.
std::string capabilityNames(std::uint64_t set);

}  // namespace eni
