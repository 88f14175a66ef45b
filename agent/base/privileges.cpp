#include "agent/base/privileges.h"

#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

// Raw capget/capset and prctl rather than libcap: a dozen calls do not justify one more runtime
// library in the image and the .deb, and each step below is the kernel interface itself, so what
// is checked afterwards is exactly what was asked for.
namespace eni {
namespace {

static_assert(kNetAdminCapability == std::uint64_t{1} << CAP_NET_ADMIN);

constexpr std::array<const char*, 41> kCapabilityNames = {"cap_chown",
                                                          "cap_dac_override",
                                                          "cap_dac_read_search",
                                                          "cap_fowner",
                                                          "cap_fsetid",
                                                          "cap_kill",
                                                          "cap_setgid",
                                                          "cap_setuid",
                                                          "cap_setpcap",
                                                          "cap_linux_immutable",
                                                          "cap_net_bind_service",
                                                          "cap_net_broadcast",
                                                          "cap_net_admin",
                                                          "cap_net_raw",
                                                          "cap_ipc_lock",
                                                          "cap_ipc_owner",
                                                          "cap_sys_module",
                                                          "cap_sys_rawio",
                                                          "cap_sys_chroot",
                                                          "cap_sys_ptrace",
                                                          "cap_sys_pacct",
                                                          "cap_sys_admin",
                                                          "cap_sys_boot",
                                                          "cap_sys_nice",
                                                          "cap_sys_resource",
                                                          "cap_sys_time",
                                                          "cap_sys_tty_config",
                                                          "cap_mknod",
                                                          "cap_lease",
                                                          "cap_audit_write",
                                                          "cap_audit_control",
                                                          "cap_setfcap",
                                                          "cap_mac_override",
                                                          "cap_mac_admin",
                                                          "cap_syslog",
                                                          "cap_wake_alarm",
                                                          "cap_block_suspend",
                                                          "cap_audit_read",
                                                          "cap_perfmon",
                                                          "cap_bpf",
                                                          "cap_checkpoint_restore"};

constexpr int kCapabilityBits = 64;

struct CapabilitySets {
  std::uint64_t effective = 0, permitted = 0, inheritable = 0;
  bool operator==(const CapabilitySets&) const = default;
};

tl::unexpected<Error> refused(const std::string& step, const std::string& hint = "") {
  return fail(ErrorCode::Permission, step + ": " + std::strerror(errno) + hint);
}

// The error says why, without the text: parseRunAsUser quotes the whole of it.
Result<std::uint32_t> parseId(const std::string& text, const std::string& what) {
  std::uint32_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value == 4294967295u) {
    return fail(ErrorCode::Invalid, "the " + what +
                                        " must be a number from 1 to 4294967294, e.g. "
                                        "65532:65532 (names are not looked up)");
  }
  if (value == 0) {
    return fail(ErrorCode::Invalid, "the " + what +
                                        " 0 is root, which drops nothing; leave the flag empty to "
                                        "keep running as started");
  }
  return value;
}

Result<CapabilitySets> getCapabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  if (syscall(SYS_capget, &header, data.data()) != 0) {
    return fail(ErrorCode::Internal, std::string("capget: ") + std::strerror(errno));
  }
  auto join = [](std::uint32_t low, std::uint32_t high) {
    return (std::uint64_t{high} << 32) | low;
  };
  return CapabilitySets{join(data[0].effective, data[1].effective),
                        join(data[0].permitted, data[1].permitted),
                        join(data[0].inheritable, data[1].inheritable)};
}

bool setCapabilities(const CapabilitySets& sets) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  auto low = [](std::uint64_t bits) { return static_cast<std::uint32_t>(bits); };
  auto high = [](std::uint64_t bits) { return static_cast<std::uint32_t>(bits >> 32); };
  data[0].effective = low(sets.effective);
  data[1].effective = high(sets.effective);
  data[0].permitted = low(sets.permitted);
  data[1].permitted = high(sets.permitted);
  data[0].inheritable = low(sets.inheritable);
  data[1].inheritable = high(sets.inheritable);
  return syscall(SYS_capset, &header, data.data()) == 0;
}

Result<int> threadCount() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) {
    return fail(ErrorCode::Internal, std::string("cannot count this process's threads in "
                                                 "/proc/self/task: ") +
                                         std::strerror(errno));
  }
  int threads = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++threads;
  }
  closedir(dir);
  return threads;
}

bool isAlready(const ProcessPrivileges& p, RunAsUser want) {
  return p.realUid == want.uid && p.effectiveUid == want.uid && p.savedUid == want.uid &&
         p.realGid == want.gid && p.effectiveGid == want.gid && p.savedGid == want.gid &&
         p.supplementaryGroups == 0;
}

// While CAP_SETPCAP is still effective (a root started outside a container keeps it; a
// container's root usually does not): nothing but CAP_NET_ADMIN can ever come back.
Result<void> shrinkBoundingSet(const ProcessPrivileges& before) {
  if ((before.effective & (std::uint64_t{1} << CAP_SETPCAP)) == 0) return {};
  for (int cap = 0; cap < kCapabilityBits; ++cap) {
    if (cap == CAP_NET_ADMIN || (before.bounding & (std::uint64_t{1} << cap)) == 0) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return refused("prctl(PR_CAPBSET_DROP, " + capabilityNames(std::uint64_t{1} << cap) + ")");
    }
  }
  return {};
}

Result<void> switchIdentity(const ProcessPrivileges& before, RunAsUser want) {
  const std::string hint =
      " (switching to " + toString(want) +
      " needs CAP_SETUID and CAP_SETGID: start as root, or leave --run-as-user empty)";
  // Without it, the switch to non-zero UIDs would empty the permitted set as well.
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return refused("prctl(PR_SET_KEEPCAPS)");
  if (auto shrunk = shrinkBoundingSet(before); !shrunk) return shrunk;
  if (setgroups(0, nullptr) != 0) return refused("setgroups(0)", hint);
  if (setresgid(want.gid, want.gid, want.gid) != 0) return refused("setresgid", hint);
  if (setresuid(want.uid, want.uid, want.uid) != 0) return refused("setresuid", hint);
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) return refused("prctl(PR_SET_KEEPCAPS, 0)");
  return {};
}

// capset only when something changes: systemd's SystemCallFilter=~@privileged refuses capset
// even for a no-op, and its User= + AmbientCapabilities= already give exactly this.
Result<void> keepOnlyNetAdmin() {
  auto sets = getCapabilities();
  if (!sets) return fail(sets.error());
  const CapabilitySets want{kNetAdminCapability, kNetAdminCapability, kNetAdminCapability};
  if (*sets != want && !setCapabilities(want)) return refused("capset(cap_net_admin)");
  // The ambient set carries CAP_NET_ADMIN across an execve; the agent does not exec, so this only
  // keeps the process's sets the same as systemd's AmbientCapabilities= makes them.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_ADMIN, 0, 0) != 1 &&
      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_ADMIN, 0, 0) != 0) {
    return refused("prctl(PR_CAP_AMBIENT_RAISE, cap_net_admin)");
  }
  return {};
}

}  // namespace

Result<RunAsUser> parseRunAsUser(const std::string& text) {
  auto invalid = [&](const Error& e) {
    return fail(ErrorCode::Invalid, "\"" + text + "\": " + e.message);
  };
  const auto colon = text.find(':');
  auto uid = parseId(text.substr(0, colon), "user ID");
  if (!uid) return invalid(uid.error());
  RunAsUser out{*uid, *uid};
  if (colon != std::string::npos) {
    auto gid = parseId(text.substr(colon + 1), "group ID");
    if (!gid) return invalid(gid.error());
    out.gid = *gid;
  }
  return out;
}

std::string toString(RunAsUser user) {
  return std::to_string(user.uid) + ":" + std::to_string(user.gid);
}

std::string capabilityNames(std::uint64_t set) {
  std::string out;
  for (int cap = 0; cap < kCapabilityBits; ++cap) {
    if ((set & (std::uint64_t{1} << cap)) == 0) continue;
    if (!out.empty()) out += ",";
    out += static_cast<std::size_t>(cap) < kCapabilityNames.size()
               ? std::string(kCapabilityNames[static_cast<std::size_t>(cap)])
               : "cap_" + std::to_string(cap);
  }
  return out.empty() ? "none" : out;
}

Result<ProcessPrivileges> currentPrivileges() {
  ProcessPrivileges p;
  if (getresuid(&p.realUid, &p.effectiveUid, &p.savedUid) != 0 ||
      getresgid(&p.realGid, &p.effectiveGid, &p.savedGid) != 0) {
    return fail(ErrorCode::Internal, std::string("getresuid/getresgid: ") + std::strerror(errno));
  }
  p.supplementaryGroups = getgroups(0, nullptr);
  if (p.supplementaryGroups < 0) {
    return fail(ErrorCode::Internal, std::string("getgroups: ") + std::strerror(errno));
  }
  auto sets = getCapabilities();
  if (!sets) return fail(sets.error());
  p.effective = sets->effective;
  p.permitted = sets->permitted;
  p.inheritable = sets->inheritable;
  for (int cap = 0; cap < kCapabilityBits; ++cap) {
    const int bounded = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (bounded < 0) break;  // past the kernel's last capability
    if (bounded == 1) p.bounding |= std::uint64_t{1} << cap;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1) {
      p.ambient |= std::uint64_t{1} << cap;
    }
  }
  const int noNewPrivs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  if (noNewPrivs < 0) {
    return fail(ErrorCode::Internal,
                std::string("prctl(PR_GET_NO_NEW_PRIVS): ") + std::strerror(errno));
  }
  p.noNewPrivs = noNewPrivs == 1;
  return p;
}

Result<void> checkDropped(const ProcessPrivileges& p, RunAsUser want) {
  const std::string prefix = "after the switch to " + toString(want) + ", ";
  auto ids = [](auto real, auto effective, auto saved) {
    return std::to_string(real) + "/" + std::to_string(effective) + "/" + std::to_string(saved);
  };
  auto capabilities = [&](const char* set, std::uint64_t value) -> Result<void> {
    if (value == kNetAdminCapability) return {};
    return fail(ErrorCode::Permission, prefix + "the " + set + " capabilities are " +
                                           capabilityNames(value) + ", not cap_net_admin alone");
  };
  if (p.realUid != want.uid || p.effectiveUid != want.uid || p.savedUid != want.uid) {
    return fail(ErrorCode::Permission, prefix + "the real/effective/saved UIDs are " +
                                           ids(p.realUid, p.effectiveUid, p.savedUid));
  }
  if (p.realGid != want.gid || p.effectiveGid != want.gid || p.savedGid != want.gid) {
    return fail(ErrorCode::Permission, prefix + "the real/effective/saved GIDs are " +
                                           ids(p.realGid, p.effectiveGid, p.savedGid));
  }
  if (p.supplementaryGroups != 0) {
    return fail(ErrorCode::Permission,
                prefix + std::to_string(p.supplementaryGroups) + " supplementary groups remain");
  }
  if (auto ok = capabilities("effective", p.effective); !ok) return ok;
  if (auto ok = capabilities("permitted", p.permitted); !ok) return ok;
  if (auto ok = capabilities("ambient", p.ambient); !ok) return ok;
  if (!p.noNewPrivs) return fail(ErrorCode::Permission, prefix + "no_new_privs is not set");
  return {};
}

Result<ProcessPrivileges> dropPrivileges(RunAsUser want) {
  auto threads = threadCount();
  if (!threads) return fail(threads.error());
  if (*threads != 1) {
    return fail(ErrorCode::Internal, "privileges must be dropped before any thread starts, and " +
                                         std::to_string(*threads) + " threads run");
  }
  auto before = currentPrivileges();
  if (!before) return before;
  if ((before->permitted & kNetAdminCapability) == 0) {
    return fail(ErrorCode::Permission,
                "cap_net_admin is not permitted to this process (permitted: " +
                    capabilityNames(before->permitted) + "), so it cannot keep it as " +
                    toString(want) +
                    ": start it as root with cap_net_admin, cap_setuid and cap_setgid (a "
                    "container runtime passes no ambient capabilities to a non-root user)");
  }
  if (!isAlready(*before, want)) {
    if (auto switched = switchIdentity(*before, want); !switched) return fail(switched.error());
  }
  if (auto kept = keepOnlyNetAdmin(); !kept) return fail(kept.error());
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return refused("prctl(PR_SET_NO_NEW_PRIVS)");
  auto after = currentPrivileges();
  if (!after) return after;
  if (auto ok = checkDropped(*after, want); !ok) return fail(ok.error());
  return after;
}

}  // namespace eni
