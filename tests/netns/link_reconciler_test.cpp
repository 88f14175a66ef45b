// Links on the real kernel: NlLinkManager's events and changes, and the LinkReconciler, in a
// network namespace the test makes (the agent's sockets enter it with setns, as --link-netns does).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "agent/base/event_loop.h"
#include "agent/eni/link_reconciler.h"
#include "netlink/link_dump.h"
#include "netlink/nl_link_manager.h"
#include "tests/support/netns_fixture.h"

namespace eni {
namespace {

std::string macFor(int i) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "02:00:00:ee:%02x:%02x", (i >> 8) & 0xff, i & 0xff);
  return buf;
}

class LinkReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "netns tests need root; CI runs them as root";
    auto ns = testing::TestNetns::create("eni-test-links");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    links_ = std::make_unique<NlLinkManager>(loop_, ns_->path());
    reconciler_ = std::make_unique<LinkReconciler>(*links_, clock_);
    ASSERT_TRUE(links_->start([this](const LinkEvent& e) {
      ++events_;
      reconciler_->onEvent(e);
    }));
  }

  LinkInfo kernel(const std::string& name) {
    auto links = dumpLinks(ns_->path());
    EXPECT_TRUE(links);
    for (const auto& l : *links) {
      if (l.name == name) return l;
    }
    return {};
  }
  bool configured(const std::string& mac) {
    auto it = reconciler_->links().find(mac);
    return it != reconciler_->links().end() && it->second.state == LinkState::Configured;
  }
  bool waitConfigured(const std::vector<std::string>& macs) {
    return loop_.runUntil(
        [&] {
          return std::all_of(macs.begin(), macs.end(),
                             [&](const auto& m) { return configured(m); });
        },
        Duration(20000));
  }

  EventLoop loop_;
  SystemClock clock_;
  std::optional<testing::TestNetns> ns_;
  std::unique_ptr<NlLinkManager> links_;
  std::unique_ptr<LinkReconciler> reconciler_;
  int events_ = 0;
};

TEST_F(LinkReconcilerTest, AManagedVethComesUpWithItsMtuInTheFirstEventsHandler) {
  reconciler_->manage(macFor(1), 1400);
  ASSERT_TRUE(ns_->addVeth("eni-m1", macFor(1), "eni-m1p"));
  ASSERT_TRUE(waitConfigured({macFor(1)}));
  const LinkInfo k = kernel("eni-m1");
  EXPECT_TRUE(k.adminUp());
  EXPECT_EQ(k.mtu, 1400u);
  EXPECT_EQ(reconciler_->configureRuns(), 1u)
      << "one handler run set both, on the announcing event";
  EXPECT_EQ(reconciler_->changesSent(), 1u)
      << "MTU and up in one RTM_NEWLINK request, not one synchronous request each";
  EXPECT_EQ(reconciler_->latencies().size(), 1u);
  EXPECT_EQ(links_->dumps(), 1u) << "no dump after startup";
}

TEST_F(LinkReconcilerTest, UnmanagedLinksAreNeverTouched) {
  ASSERT_TRUE(ns_->addVeth("eni-u1", macFor(100), "eni-u1p"));
  reconciler_->manage(macFor(2), 0);
  ASSERT_TRUE(ns_->addVeth("eni-m2", macFor(2), "eni-m2p"));  // the barrier: events are in order
  ASSERT_TRUE(waitConfigured({macFor(2)}));
  const LinkInfo u = kernel("eni-u1");
  EXPECT_FALSE(u.adminUp());
  EXPECT_EQ(u.mtu, 1500u);
  EXPECT_FALSE(kernel("eni-u1p").adminUp());
  EXPECT_EQ(reconciler_->changesSent(), 1u) << "only the managed link's up";
  EXPECT_EQ(kernel("eni-m2").mtu, 1500u) << "mtu 0 leaves the MTU alone";
}

TEST_F(LinkReconcilerTest, DeleteAndReAddIsConfiguredAgain) {
  reconciler_->manage(macFor(3), 1300);
  ASSERT_TRUE(ns_->addVeth("eni-m3", macFor(3), "eni-m3p"));
  ASSERT_TRUE(waitConfigured({macFor(3)}));
  ASSERT_TRUE(ns_->deleteLink("eni-m3"));
  ASSERT_TRUE(
      loop_.runUntil([&] { return reconciler_->links().at(macFor(3)).state == LinkState::Gone; },
                     Duration(20000)));
  ASSERT_TRUE(ns_->addVeth("eni-m3b", macFor(3), "eni-m3bp"));  // same MAC, new name and ifindex
  ASSERT_TRUE(waitConfigured({macFor(3)}));
  EXPECT_TRUE(kernel("eni-m3b").adminUp());
  EXPECT_EQ(kernel("eni-m3b").mtu, 1300u);
  EXPECT_EQ(reconciler_->links().at(macFor(3)).name, "eni-m3b");
  EXPECT_EQ(links_->dumps(), 1u);
}

TEST_F(LinkReconcilerTest, SixtyFourLinksAtOnceAreAllConfigured) {
  std::vector<std::string> macs;
  for (int i = 0; i < 64; ++i) {
    macs.push_back(macFor(1000 + i));
    reconciler_->manage(macs.back(), 9001);
  }
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(ns_->addVeth("e" + std::to_string(i), macs[static_cast<std::size_t>(i)],
                             "p" + std::to_string(i)));
  }
  ASSERT_TRUE(waitConfigured(macs));
  auto all = dumpLinks(ns_->path());
  ASSERT_TRUE(all);
  int up = 0;
  for (const auto& l : *all) {
    if (std::find(macs.begin(), macs.end(), l.mac) != macs.end() && l.adminUp() && l.mtu == 9001)
      ++up;
  }
  EXPECT_EQ(up, 64);
  EXPECT_EQ(reconciler_->configureRuns(), 64u);
  EXPECT_EQ(links_->dumps(), 1u + links_->overruns()) << "a re-dump only for an ENOBUFS overrun";
  EXPECT_EQ(links_->overruns(), 0u) << "the event socket's buffer holds a burst of 64 links";
}

TEST_F(LinkReconcilerTest, ChangesOnAMissingDeviceAreTyped) {
  auto r = links_->setUp(999999);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::NotFound) << r.error().message;
  ASSERT_TRUE(ns_->addVeth("eni-bad", macFor(7), "eni-badp"));
  ASSERT_TRUE(loop_.runUntil([&] { return kernel("eni-bad").ifindex != 0; }, Duration(5000)));
  auto mtu = links_->setMtu(kernel("eni-bad").ifindex, 70000);
  ASSERT_FALSE(mtu);
  EXPECT_EQ(mtu.error().code, ErrorCode::Invalid) << mtu.error().message;
  // Refused as a whole: the up that came with the MTU is not applied either.
  auto both = links_->configure(kernel("eni-bad").ifindex, 70000, true);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().code, ErrorCode::Invalid) << both.error().message;
  EXPECT_NE(both.error().message.find("set mtu 70000 and up"), std::string::npos)
      << both.error().message;
  EXPECT_FALSE(kernel("eni-bad").adminUp());
}

}  // namespace
}  // namespace eni
