// The parts of the privilege drop that need no root: parsing --run-as-user, naming capability
// sets, the post-condition check, reading the process's own privileges, and the refusal to drop
// while another thread runs. The drop itself is in tests/netns/privileges_test.cpp (root).
#include "agent/base/privileges.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace eni {
namespace {

TEST(RunAsUser, ParsesUserAndGroupAndDefaultsTheGroupToTheUser) {
  EXPECT_EQ(parseRunAsUser("65532:65532"), (RunAsUser{65532, 65532}));
  EXPECT_EQ(parseRunAsUser("1000:2000"), (RunAsUser{1000, 2000}));
  EXPECT_EQ(parseRunAsUser("65532"), (RunAsUser{65532, 65532}));
  EXPECT_EQ(parseRunAsUser("4294967294:1"), (RunAsUser{4294967294u, 1}));
  EXPECT_EQ(toString(RunAsUser{65532, 65533}), "65532:65533");
}

TEST(RunAsUser, RefusesNamesRootAndOutOfRangeNumbersQuotingTheText) {
  for (const char* bad :
       {"", "nobody", "0", "0:0", "65532:0", "0:65532", "65532:", ":65532", "-1", "4294967295",
        "4294967296", "65532:65532:1", " 65532", "65532 ", "+65532", "0x10", "65532:nogroup"}) {
    auto parsed = parseRunAsUser(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::Invalid) << bad;
    EXPECT_EQ(parsed.error().message.rfind(std::string("\"") + bad + "\": ", 0), 0u)
        << parsed.error().message;
  }
  EXPECT_NE(parseRunAsUser("0").error().message.find("leave the flag empty"), std::string::npos);
  EXPECT_NE(parseRunAsUser("nobody").error().message.find("names are not looked up"),
            std::string::npos);
}

TEST(CapabilityNames, NamesEachBitInOrder) {
  EXPECT_EQ(capabilityNames(0), "none");
  EXPECT_EQ(capabilityNames(kNetAdminCapability), "cap_net_admin");
  EXPECT_EQ(capabilityNames(kNetAdminCapability | (1u << 7) | (1u << 6)),
            "cap_setgid,cap_setuid,cap_net_admin");
  EXPECT_EQ(capabilityNames(std::uint64_t{1} << 40), "cap_checkpoint_restore");
  EXPECT_EQ(capabilityNames(std::uint64_t{1} << 45), "cap_45") << "a capability newer than us";
}

ProcessPrivileges dropped() {
  ProcessPrivileges p;
  p.realUid = p.effectiveUid = p.savedUid = 65532;
  p.realGid = p.effectiveGid = p.savedGid = 65533;
  p.effective = p.permitted = p.inheritable = p.ambient = p.bounding = kNetAdminCapability;
  p.noNewPrivs = true;
  return p;
}

TEST(CheckDropped, AcceptsExactlyTheUserItsGroupAndCapNetAdmin) {
  EXPECT_TRUE(checkDropped(dropped(), {65532, 65533}));
  auto wider = dropped();
  wider.bounding = ~std::uint64_t{0};  // not something it promises: a container may not allow it
  wider.inheritable = 0;
  EXPECT_TRUE(checkDropped(wider, {65532, 65533}));
}

struct Off {
  const char* what;
  void (*spoil)(ProcessPrivileges&);
  const char* mustMention;
};

TEST(CheckDropped, NamesTheFirstThingThatIsOff) {
  const Off cases[] = {
      {"saved uid still root", [](ProcessPrivileges& p) { p.savedUid = 0; },
       "UIDs are 65532/65532/0"},
      {"effective uid", [](ProcessPrivileges& p) { p.effectiveUid = 0; }, "UIDs are 65532/0/65532"},
      {"real gid", [](ProcessPrivileges& p) { p.realGid = 0; }, "GIDs are 0/65533/65533"},
      {"a group left", [](ProcessPrivileges& p) { p.supplementaryGroups = 1; },
       "1 supplementary groups remain"},
      {"no capability", [](ProcessPrivileges& p) { p.effective = 0; },
       "effective capabilities are none"},
      {"one too many", [](ProcessPrivileges& p) { p.permitted |= 1u << 7; },
       "permitted capabilities are cap_setuid,cap_net_admin"},
      {"no ambient", [](ProcessPrivileges& p) { p.ambient = 0; }, "ambient capabilities are none"},
      {"no_new_privs", [](ProcessPrivileges& p) { p.noNewPrivs = false; },
       "no_new_privs is not set"},
  };
  for (const auto& c : cases) {
    auto p = dropped();
    c.spoil(p);
    auto checked = checkDropped(p, {65532, 65533});
    ASSERT_FALSE(checked) << c.what;
    EXPECT_EQ(checked.error().code, ErrorCode::Permission);
    EXPECT_NE(checked.error().message.find(c.mustMention), std::string::npos)
        << c.what << ": " << checked.error().message;
    EXPECT_NE(checked.error().message.find("65532:65533"), std::string::npos);
  }
}

TEST(CurrentPrivileges, AgreesWithTheKernelsOtherAnswers) {
  auto p = currentPrivileges();
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->realUid, getuid());
  EXPECT_EQ(p->effectiveUid, geteuid());
  EXPECT_EQ(p->realGid, getgid());
  EXPECT_EQ(p->effectiveGid, getegid());
  EXPECT_EQ(p->supplementaryGroups, getgroups(0, nullptr));
  EXPECT_EQ(p->noNewPrivs, prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
  EXPECT_EQ((p->bounding & kNetAdminCapability) != 0,
            prctl(PR_CAPBSET_READ, 12, 0, 0, 0) == 1);  // CAP_NET_ADMIN
  EXPECT_EQ(p->permitted & ~p->bounding, 0u) << "nothing permitted outside the bounding set";
  EXPECT_EQ(p->effective & ~p->permitted, 0u);
}

// Capabilities are per thread: a drop with a second thread running would leave that thread
// with its own. It is refused before anything changes. In a child, so that this test process
// keeps what it has even if the refusal were broken.
TEST(DropPrivileges, RefusesWhileAnotherThreadRunsAndChangesNothing) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread other([&] {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
    });
    const uid_t before = geteuid();
    auto r = dropPrivileges({65532, 65532});
    {
      std::lock_guard lock(m);
      done = true;
    }
    cv.notify_one();
    other.join();
    const bool refused =
        !r && r.error().code == ErrorCode::Internal &&
        r.error().message.find("before any thread starts, and 2 threads run") != std::string::npos;
    _exit(refused && geteuid() == before ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace eni
