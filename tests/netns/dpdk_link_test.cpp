// The link side of tests/env/sysfs_emulator.py, on the real kernel: an ENI's interface leaves its
// network namespace when PciBinder gives its device to vfio-pci, and comes back with its MAC when
// the device goes back to ena. The device itself is emulated, never a real one. Needs root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "agent/dpdk/pci_binder.h"
#include "agent/dpdk/sysfs.h"
#include "netlink/link_dump.h"
#include "tests/support/netns_fixture.h"
#include "tests/support/sysfs_emulator.h"

namespace eni {
namespace {

constexpr const char* kPci = "0000:00:06.0";
constexpr const char* kMac = "02:aa:00:00:00:01";

// The MAC of `name` in the namespace; empty when there is no such link.
std::string macIn(const std::string& netns, const std::string& name) {
  auto links = dumpLinks(netns);
  if (!links) {
    ADD_FAILURE() << links.error().message;
    return "";
  }
  auto it =
      std::find_if(links->begin(), links->end(), [&](const LinkInfo& l) { return l.name == name; });
  return it == links->end() ? "" : it->mac;
}

TEST(DpdkLink, TheInterfaceLeavesWithTheDeviceAndComesBackWithItsMac) {
  ASSERT_EQ(geteuid(), 0u) << "netns tests need root; CI runs them as root";
  auto ns = testing::TestNetns::create("eni-test-dpdk");
  ASSERT_TRUE(ns) << ns.error().message;
  ASSERT_TRUE(ns->addVeth("eth1", kMac, "eth1-peer"));
  testing::SysfsEmulatorOptions options;
  options.devices = {{kPci, "eth1", kMac, "ena"}};
  options.netnsPath = ns->path();
  auto emulator = testing::SysfsEmulator::start(options);
  ASSERT_TRUE(emulator) << emulator.error().message;
  FileSysfs sysfs((*emulator)->root());
  RealSleeper sleeper;
  PciBinder binder(sysfs, &sleeper, 500, Duration(20));

  auto bound = binder.bind(kPci, "vfio-pci");
  ASSERT_TRUE(bound) << bound.error().message << "\n" << (*emulator)->output();
  EXPECT_EQ(macIn(ns->path(), "eth1"), "") << "the interface went with its device";

  auto restored = binder.restore(*bound);
  ASSERT_TRUE(restored) << restored.error().message << "\n" << (*emulator)->output();
  EXPECT_EQ(macIn(ns->path(), "eth1"), kMac) << (*emulator)->output();
  std::vector<std::string> linkOps;
  for (const auto& op : (*emulator)->operations())
    if (op.op.starts_with("link-")) linkOps.push_back(op.op + " " + op.ifname + " " + op.mac);
  EXPECT_EQ(linkOps,
            (std::vector<std::string>{"link-del eth1 ", "link-add eth1 " + std::string(kMac)}));
}

}  // namespace
}  // namespace eni
