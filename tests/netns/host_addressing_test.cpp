// configureAddress and policyRouting on real kernel links: a veth in a namespace of the test's
// making stands in for the ENI's interface; everything is read back through netlink.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "agent/base/clock.h"
#include "agent/base/event_loop.h"
#include "agent/host/host_addressing.h"
#include "netlink/address_manager.h"
#include "netlink/link_dump.h"
#include "netlink/nl_link_manager.h"
#include "tests/support/netns_fixture.h"

namespace eni {
namespace {

class HostAddressingNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "netns tests need root";
    auto ns = testing::TestNetns::create("eni-addr");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    ASSERT_TRUE(ns_->addVeth("eniA0", "02:0a:0b:0c:0d:0e", "eniA0p"));
    links_ = std::make_unique<NlLinkManager>(loop_, ns_->path());
    ASSERT_TRUE(links_->start([](const LinkEvent&) {}));
    auto dump = dumpLinks(ns_->path());
    ASSERT_TRUE(dump);
    for (const auto& l : *dump) {
      if (l.name == "eniA0") ifindex_ = l.ifindex;
      if (l.name == "eniA0" || l.name == "eniA0p") {
        ASSERT_TRUE(links_->setUp(l.ifindex));
      }
    }
    ASSERT_GT(ifindex_, 0);
  }

  std::size_t count(const std::vector<std::string>& list, const std::string& item) {
    return static_cast<std::size_t>(std::count(list.begin(), list.end(), item));
  }

  EventLoop loop_;
  std::optional<testing::TestNetns> ns_;
  std::unique_ptr<NlLinkManager> links_;
  int ifindex_ = 0;
};

TEST_F(HostAddressingNetns, AddressTableRoutesAndRuleAreAppliedOnceAndRemovedAgain) {
  auto plan = planAddressing(ifindex_, "10.0.1.23", "10.0.1.0/24", 2, true, true);
  ASSERT_TRUE(plan) << plan.error().message;
  NlAddressManager manager(ns_->path());
  for (int i = 0; i < 2; ++i) {  // the second apply changes nothing
    auto applied = manager.apply(*plan);
    ASSERT_TRUE(applied) << applied.error().message;
  }
  auto addresses = manager.addresses(ifindex_);
  ASSERT_TRUE(addresses);
  EXPECT_EQ(count(*addresses, "10.0.1.23/24"), 1u);
  auto routes = manager.routes(10002);
  ASSERT_TRUE(routes);
  ASSERT_EQ(routes->size(), 2u);
  bool subnet = false, defaultRoute = false;
  for (const auto& r : *routes) {
    EXPECT_EQ(r.ifindex, ifindex_);
    if (r.destination == "10.0.1.0/24" && r.gateway.empty()) subnet = true;
    if (r.destination == "0.0.0.0/0" && r.gateway == "10.0.1.1") defaultRoute = true;
  }
  EXPECT_TRUE(subnet);
  EXPECT_TRUE(defaultRoute);
  auto rules = manager.rules(10002);
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ((*rules)[0].source, "10.0.1.23/32");
  EXPECT_EQ((*rules)[0].priority, 10002u);

  // The address changed: the rule follows, no second rule stays behind.
  ASSERT_TRUE(manager.remove(*plan));
  auto moved = planAddressing(ifindex_, "10.0.1.99", "10.0.1.0/24", 2, true, true);
  ASSERT_TRUE(manager.apply(*moved));
  rules = manager.rules(10002);
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ((*rules)[0].source, "10.0.1.99/32");
  addresses = manager.addresses(ifindex_);
  EXPECT_EQ(count(*addresses, "10.0.1.23/24"), 0u);
  EXPECT_EQ(count(*addresses, "10.0.1.99/24"), 1u);

  ASSERT_TRUE(manager.remove(*moved));
  EXPECT_TRUE(manager.rules(10002)->empty());
  EXPECT_TRUE(manager.routes(10002)->empty());
  EXPECT_EQ(count(*manager.addresses(ifindex_), "10.0.1.99/24"), 0u);
}

TEST_F(HostAddressingNetns, PolicyRoutingAloneLeavesTheAddressesAlone) {
  auto plan = planAddressing(ifindex_, "10.0.1.23", "10.0.1.0/24", 3, false, true);
  ASSERT_TRUE(plan);
  NlAddressManager manager(ns_->path());
  ASSERT_TRUE(manager.apply(*plan));
  EXPECT_EQ(count(*manager.addresses(ifindex_), "10.0.1.23/24"), 0u);
  EXPECT_EQ(manager.rules(10003)->size(), 1u);
  ASSERT_TRUE(manager.remove(*plan));
  EXPECT_TRUE(manager.rules(10003)->empty());
}

TEST_F(HostAddressingNetns, AnAddressSomeoneDeletesIsPutBackFromTheAddressEvent) {
  SystemClock clock;
  NlLinkManager events(loop_, ns_->path());
  LinkReconciler links(events, clock);
  NlAddressManager manager(ns_->path());
  HostAddressing addressing(manager, links);
  HostLink want;
  want.key = "host-1";
  want.eniId = "eni-1";
  want.mac = "02:0a:0b:0c:0d:0e";
  want.deviceIndex = 1;
  want.primaryIpv4 = "10.0.1.23";
  want.subnetCidr = "10.0.1.0/24";
  want.configureAddress = true;
  want.policyRouting = true;
  links.manage(want.mac, 0);
  ASSERT_TRUE(events.start([&](const LinkEvent& e) { links.onEvent(e); }));
  NlAddressWatch watch(loop_, ns_->path());
  int deletions = 0;
  ASSERT_TRUE(watch.start([&](int ifindex) {
    ++deletions;
    addressing.forget(ifindex);
    addressing.update({want});
  }));
  ASSERT_TRUE(loop_.runUntil(
      [&] { return links.links().at(want.mac).state == LinkState::Configured; }, Duration(10000)));
  addressing.update({want});
  ASSERT_EQ(addressing.applied().size(), 1u);
  auto has = [&] {
    return count(manager.addresses(ifindex_).value_or(std::vector<std::string>{}),
                 "10.0.1.23/24") == 1;
  };
  ASSERT_TRUE(has());

  InterfaceAddressing onlyAddress = addressing.applied().at("host-1");
  onlyAddress.policyRouting = false;
  ASSERT_TRUE(manager.remove(onlyAddress));  // someone else deletes it
  ASSERT_FALSE(has());
  EXPECT_TRUE(loop_.runUntil([&] { return deletions > 0 && has(); }, Duration(10000)));
  EXPECT_EQ(manager.rules(10001)->size(), 1u);
}

}  // namespace
}  // namespace eni
