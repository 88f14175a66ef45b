// planAddressing (pure) and HostAddressing's decisions, with a fake AddressManager and links fed
// to a real LinkReconciler as synthetic events.
#include <gtest/gtest.h>

#include "agent/host/host_addressing.h"
#include "tests/support/manual_scheduler.h"

namespace eni {
namespace {

TEST(PlanAddressing, GatewayIsTheSubnetsFirstHostAndTableIs10000PlusDeviceIndex) {
  auto a = planAddressing(7, "10.0.129.77", "10.0.128.0/17", 2, true, true);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->ifindex, 7);
  EXPECT_EQ(a->prefixLength, 17);
  EXPECT_EQ(a->subnet, "10.0.128.0/17");
  EXPECT_EQ(a->gateway, "10.0.128.1");
  EXPECT_EQ(a->table, 10002u);
  EXPECT_EQ(a->rulePriority, 10002u);
}

TEST(PlanAddressing, RejectsWhatIsNotAnIpv4SubnetOrOutsideIt) {
  EXPECT_FALSE(planAddressing(1, "10.0.2.5", "10.0.1.0/24", 1, true, true));
  EXPECT_FALSE(planAddressing(1, "fe80::1", "10.0.1.0/24", 1, true, true));
  EXPECT_FALSE(planAddressing(1, "10.0.1.5", "10.0.1.0", 1, true, true));
  EXPECT_FALSE(planAddressing(1, "10.0.1.5", "10.0.1.0/32", 1, true, true));
  EXPECT_FALSE(planAddressing(1, "", "", 1, true, true));
}

class FakeAddresses final : public AddressManager {
 public:
  Result<void> apply(const InterfaceAddressing& want) override {
    applies.push_back(want);
    if (failApply) return fail(ErrorCode::Transient, "netlink busy");
    return {};
  }
  Result<void> remove(const InterfaceAddressing& applied) override {
    removes.push_back(applied);
    return {};
  }
  std::vector<InterfaceAddressing> applies, removes;
  bool failApply = false;
};

class NoopLinks final : public LinkManager {
 public:
  Result<void> start(std::function<void(const LinkEvent&)>) override { return {}; }
  Result<void> configure(int, std::uint32_t, bool) override { return {}; }
  std::uint64_t dumps() const override { return 0; }
};

LinkEvent upLink(int ifindex, const std::string& mac) {
  LinkEvent e;
  e.link.ifindex = ifindex;
  e.link.name = "ens" + std::to_string(ifindex);
  e.link.mac = mac;
  e.link.flags = 1;  // IFF_UP
  e.link.mtu = 1500;
  return e;
}

HostLink wanted(const std::string& ip) {
  HostLink l;
  l.key = "host-1";
  l.eniId = "eni-1";
  l.mac = "02:00:00:00:00:01";
  l.deviceIndex = 1;
  l.primaryIpv4 = ip;
  l.subnetCidr = "10.0.1.0/24";
  l.configureAddress = true;
  l.policyRouting = true;
  return l;
}

TEST(HostAddressing, AppliesOnceTheLinkIsUpChangesAndRemovesWhenItLeaves) {
  testing::ManualScheduler clock;
  NoopLinks kernel;
  LinkReconciler links(kernel, clock);
  FakeAddresses addresses;
  HostAddressing addressing(addresses, links);
  links.manage("02:00:00:00:00:01", 0);

  addressing.update({wanted("10.0.1.5")});
  EXPECT_TRUE(addresses.applies.empty());  // no link yet

  links.onEvent(upLink(4, "02:00:00:00:00:01"));
  addressing.update({wanted("10.0.1.5")});
  ASSERT_EQ(addresses.applies.size(), 1u);
  EXPECT_EQ(addresses.applies[0].ifindex, 4);
  EXPECT_EQ(addresses.applies[0].table, 10001u);
  addressing.update({wanted("10.0.1.5")});
  EXPECT_EQ(addresses.applies.size(), 1u);  // nothing changed, nothing sent

  addressing.update({wanted("10.0.1.6")});  // a new primary IP: old out, new in
  ASSERT_EQ(addresses.removes.size(), 1u);
  EXPECT_EQ(addresses.removes[0].address, "10.0.1.5");
  ASSERT_EQ(addresses.applies.size(), 2u);
  EXPECT_EQ(addresses.applies[1].address, "10.0.1.6");

  addressing.update({});
  ASSERT_EQ(addresses.removes.size(), 2u);
  EXPECT_EQ(addresses.removes[1].address, "10.0.1.6");
  EXPECT_TRUE(addressing.applied().empty());
}

TEST(HostAddressing, AFailureIsRetriedAtTheNextUpdate) {
  testing::ManualScheduler clock;
  NoopLinks kernel;
  LinkReconciler links(kernel, clock);
  FakeAddresses addresses;
  HostAddressing addressing(addresses, links);
  links.manage("02:00:00:00:00:01", 0);
  links.onEvent(upLink(4, "02:00:00:00:00:01"));
  addresses.failApply = true;
  addressing.update({wanted("10.0.1.5")});
  EXPECT_TRUE(addressing.applied().empty());
  EXPECT_EQ(addressing.failures(), 1u);
  addresses.failApply = false;
  addressing.update({wanted("10.0.1.5")});
  EXPECT_EQ(addressing.applied().size(), 1u);
  EXPECT_EQ(addresses.applies.size(), 2u);
}

TEST(HostAddressing, InterfacesWithoutTheWishesAreNeverTouched) {
  testing::ManualScheduler clock;
  NoopLinks kernel;
  LinkReconciler links(kernel, clock);
  FakeAddresses addresses;
  HostAddressing addressing(addresses, links);
  links.manage("02:00:00:00:00:01", 0);
  links.onEvent(upLink(4, "02:00:00:00:00:01"));
  HostLink plain = wanted("10.0.1.5");
  plain.configureAddress = false;
  plain.policyRouting = false;
  addressing.update({plain});
  EXPECT_TRUE(addresses.applies.empty());
  EXPECT_TRUE(addresses.removes.empty());
}

}  // namespace
}  // namespace eni
