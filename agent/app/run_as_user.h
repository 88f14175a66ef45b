#pragma once

#include <initializer_list>

#include "agent/base/error.h"
#include "agent/config/options.h"

namespace eni {

/// --run-as-user: switches the process to that user and group, keeping CAP_NET_ADMIN and nothing
/// else (dropPrivileges), and logs the outcome in one line. True when the flag is empty or the
/// drop took; false after logging why it did not (the caller exits). The composition roots call it
/// once they have opened what needs more than CAP_NET_ADMIN (netlink sockets inside
/// --link-netns), before they read any file or input and before any thread starts.
[[nodiscard]] bool applyRunAsUser(const AgentOptions& options);

/// Whether every netlink open() the composition root made before the drop worked; logs the first
/// failure ("cannot open netlink") otherwise, and the caller exits.
[[nodiscard]] bool netlinkOpened(std::initializer_list<Result<void>> opened);

}  // namespace eni
