// dropPrivileges on the real kernel (root): in a forked child, as the agent does it, netlink opened
// inside a namespace of the test's making first. The drop keeps CAP_NET_ADMIN alone, and that is
// enough to bring a veth up with an MTU through the socket opened before; the same process without
// CAP_NET_ADMIN is refused the same changes (the control that shows the first result means
// something). The real binary refuses to start when CAP_NET_ADMIN cannot be kept.
#include "agent/base/privileges.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <functional>

#include "agent/base/event_loop.h"
#include "netlink/link_dump.h"
#include "netlink/netns.h"
#include "netlink/nl_link_manager.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/test_stack.h"

namespace eni {
namespace {

constexpr RunAsUser kNobody{65532, 65532};
constexpr const char* kMac = "02:5a:00:00:01:12";

/// Runs `body` in a forked child; its return value is "" for success or what went wrong.
std::string inChild(const std::function<std::string()>& body) {
  std::array<int, 2> fds{};
  if (pipe(fds.data()) != 0) return "pipe failed";
  const pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(fds[0]);
    const std::string message = body();
    (void)!write(fds[1], message.data(), message.size());
    _exit(message.empty() ? 0 : 1);
  }
  close(fds[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) {
    message.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "the child died: " + message;
  return message;
}

/// Sets the calling thread's capability sets (a test-only capset, no libcap).
bool setCapabilities(std::uint64_t effective, std::uint64_t permitted) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  data[0].effective = static_cast<std::uint32_t>(effective);
  data[0].permitted = static_cast<std::uint32_t>(permitted);
  data[1].effective = static_cast<std::uint32_t>(effective >> 32);
  data[1].permitted = static_cast<std::uint32_t>(permitted >> 32);
  return syscall(SYS_capset, &header, data.data()) == 0;
}

class PrivilegesNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "netns tests need root; CI runs them as root";
    auto ns = testing::TestNetns::create("eni-priv");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    ASSERT_TRUE(ns_->addVeth("priv0", kMac, "priv0p", 1500));
  }

  /// Opens netlink in the namespace, drops to 65532 keeping CAP_NET_ADMIN, runs `afterDrop`, then
  /// sets the veth's MTU to 9000 and brings it up. "" when all of that worked.
  std::string dropThenConfigure(const std::function<std::string()>& afterDrop) {
    return inChild([&]() -> std::string {
      EventLoop loop;
      NlLinkManager links(loop, ns_->path());
      if (auto opened = links.open(); !opened) return "open: " + opened.error().message;
      auto dropped = dropPrivileges(kNobody);
      if (!dropped) return "drop: " + dropped.error().message;
      if (std::string problem = afterDrop(); !problem.empty()) return problem;
      int ifindex = 0;
      auto started = links.start([&](const LinkEvent& e) {
        if (e.link.name == "priv0") ifindex = e.link.ifindex;
      });
      if (!started) return "start: " + started.error().message;
      if (ifindex == 0) return "the dump did not show priv0";
      if (auto ok = links.setMtu(ifindex, 9000); !ok) return "setMtu: " + ok.error().message;
      if (auto ok = links.setUp(ifindex); !ok) return "setUp: " + ok.error().message;
      return "";
    });
  }

  LinkInfo priv0() const {
    for (const auto& l : dumpLinks(ns_->path()).value_or(std::vector<LinkInfo>{})) {
      if (l.name == "priv0") return l;
    }
    return {};
  }

  std::optional<testing::TestNetns> ns_;
};

TEST_F(PrivilegesNetns, DroppedToNonRootWithNetAdminAloneItStillConfiguresTheLink) {
  const std::string problem = dropThenConfigure([this]() -> std::string {
    auto now = currentPrivileges();
    if (!now) return now.error().message;
    if (now->effectiveUid != 65532 || now->savedUid != 65532 || now->realGid != 65532) {
      return "not 65532 after the drop";
    }
    if (now->effective != kNetAdminCapability || now->permitted != kNetAdminCapability ||
        now->ambient != kNetAdminCapability || !now->noNewPrivs) {
      return "capabilities after the drop: " + capabilityNames(now->permitted);
    }
    // Root's CAP_SYS_ADMIN is gone for real: the namespace cannot be entered any more.
    if (auto entered = NetnsGuard::enter(ns_->path()); entered) return "setns still works";
    return "";
  });
  EXPECT_EQ(problem, "");
  const LinkInfo link = priv0();
  EXPECT_TRUE(link.adminUp());
  EXPECT_EQ(link.mtu, 9000u);
}

// The control: the same child, the same socket, the same UID, minus CAP_NET_ADMIN. The kernel
// refuses both changes and the link stays as it was, so the test above can fail.
TEST_F(PrivilegesNetns, WithoutNetAdminTheSameChangesAreRefused) {
  const std::string problem = dropThenConfigure(
      []() -> std::string { return setCapabilities(0, 0) ? "" : "capset(0) failed"; });
  EXPECT_NE(problem.find("setMtu: "), std::string::npos) << problem;
  EXPECT_NE(problem.find("Operation not permitted"), std::string::npos) << problem;
  const LinkInfo link = priv0();
  EXPECT_FALSE(link.adminUp());
  EXPECT_EQ(link.mtu, 1500u);
}

TEST_F(PrivilegesNetns, NoDropWhenNetAdminIsNotPermittedToStartWith) {
  const std::string problem = inChild([]() -> std::string {
    auto root = currentPrivileges();
    if (!root) return root.error().message;
    const std::uint64_t kept = root->permitted & ~kNetAdminCapability;
    if (!setCapabilities(kept, kept)) return "capset";
    auto dropped = dropPrivileges(kNobody);
    if (dropped) return "dropped without cap_net_admin";
    if (dropped.error().message.find("cap_net_admin is not permitted") == std::string::npos) {
      return dropped.error().message;
    }
    return geteuid() == 0 ? "" : "the refusal changed the user";
  });
  EXPECT_EQ(problem, "");
}

// systemd's User= + AmbientCapabilities= start the agent as the user already: the drop only sheds
// what is above CAP_NET_ADMIN. Another user is out of reach without CAP_SETUID, and says so.
TEST_F(PrivilegesNetns, AlreadyTheUserItShedsCapabilitiesAndCannotBecomeAnother) {
  const std::string problem = inChild([]() -> std::string {
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setgroups(0, nullptr) != 0 ||
        setresgid(65532, 65532, 65532) != 0 || setresuid(65532, 65532, 65532) != 0) {
      return "could not become 65532";
    }
    const std::uint64_t kept = kNetAdminCapability | (std::uint64_t{1} << CAP_NET_RAW);
    if (!setCapabilities(kept, kept)) return "capset";
    auto dropped = dropPrivileges(kNobody);
    if (!dropped) return "drop: " + dropped.error().message;
    if (dropped->permitted != kNetAdminCapability) return "cap_net_raw kept";
    auto other = dropPrivileges({1000, 1000});
    if (other) return "became 1000 without cap_setuid";
    if (other.error().message.find("needs CAP_SETUID and CAP_SETGID") == std::string::npos) {
      return other.error().message;
    }
    return "";
  });
  EXPECT_EQ(problem, "");
}

// The real binary, started as root whose bounding set lacks CAP_NET_ADMIN (a container without
// `add: [NET_ADMIN]`): it exits 1 with the reason, before it touches its state directory.
TEST(RunAsUserBinary, RefusesToStartWhenNetAdminCannotBeKept) {
  ASSERT_EQ(geteuid(), 0u) << "netns tests need root; CI runs them as root";
  char dirTemplate[] = "/tmp/eni-runas-refused-XXXXXX";
  const std::string dir = mkdtemp(dirTemplate);
  std::array<int, 2> fds{};
  ASSERT_EQ(pipe(fds.data()), 0);
  const std::string bin = testing::agentBinary();
  const std::string stateDir = dir + "/state";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0);
    execl(bin.c_str(), bin.c_str(), "run", "--mode=host", "--run-as-user=65532:65532",
          ("--state-dir=" + stateDir).c_str(), "--config=/nonexistent/host.json",
          "--health-probe-bind-address=0", "--metrics-bind-address=0", "--log-format=text",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string err;
  char buf[512];
  pollfd p{fds[0], POLLIN, 0};
  // A bound on failure (an agent that does not exit), not a timing assertion.
  while (poll(&p, 1, 30000) > 0) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    err.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_NE(err.find("cannot drop privileges to --run-as-user, not starting"), std::string::npos)
      << err;
  EXPECT_NE(err.find("cap_net_admin is not permitted"), std::string::npos) << err;
  EXPECT_EQ(access(stateDir.c_str(), F_OK), -1) << "nothing ran before the drop failed";
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace eni
