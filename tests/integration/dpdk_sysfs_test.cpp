// agent/dpdk's FileSysfs, PciBinder and SriovConfigFile against tests/env/sysfs_emulator.py: a
// directory tree laid out like /sys's PCI part, whose writes a separate process answers as the
// kernel does, asynchronously. Never a real device. No test stack.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "agent/base/files.h"
#include "agent/dpdk/pci_binder.h"
#include "agent/dpdk/sriov_config.h"
#include "agent/dpdk/sysfs.h"
#include "tests/support/eventually.h"
#include "tests/support/sysfs_emulator.h"

namespace eni {
namespace {

namespace fs = std::filesystem;
using testing::SysfsEmulator;
using testing::SysfsOperation;

constexpr const char* kPci = "0000:00:06.0";
constexpr const char* kMac = "02:aa:00:00:00:01";

std::unique_ptr<SysfsEmulator> startEmulator() {
  testing::SysfsEmulatorOptions options;
  options.devices = {{kPci, "eth1", kMac, "ena"}};
  auto emulator = SysfsEmulator::start(options);
  if (!emulator) ADD_FAILURE() << emulator.error().message;
  return emulator ? std::move(*emulator) : nullptr;
}

// "op driver" per operation, e.g. "unbind ena", to compare sequences.
std::vector<std::string> summary(const std::vector<SysfsOperation>& ops, std::size_t from = 0) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < ops.size(); ++i)
    out.push_back(ops[i].op + " " + (ops[i].op == "error" ? ops[i].reason : ops[i].driver));
  return out;
}

struct DpdkSysfsTest : ::testing::Test {
  void SetUp() override {
    emulator = startEmulator();
    ASSERT_NE(emulator, nullptr);
    sysfs = std::make_unique<FileSysfs>(emulator->root());
    // The emulator answers asynchronously: 20 ms steps, bounded at 10 s on a loaded machine.
    binder = std::make_unique<PciBinder>(*sysfs, &sleeper, 500, Duration(20));
  }
  bool netdevExists() const { return fs::exists(emulator->root() + "/class/net/eth1"); }

  std::unique_ptr<SysfsEmulator> emulator;
  std::unique_ptr<FileSysfs> sysfs;
  RealSleeper sleeper;
  std::unique_ptr<PciBinder> binder;
};

TEST_F(DpdkSysfsTest, BindsToVfioAndRestoresToEnaAsTheKernelOrdersIt) {
  EXPECT_EQ(binder->pciAddressOf("eth1").value_or("?"), kPci);
  EXPECT_EQ(readFile(emulator->root() + "/class/net/eth1/address").value_or("?"),
            std::string(kMac) + "\n");

  auto bound = binder->bind(kPci, "vfio-pci");
  ASSERT_TRUE(bound) << bound.error().message << "\n" << emulator->output();
  EXPECT_EQ(*bound, (PciBinding{kPci, "vfio-pci", "ena"}));
  EXPECT_EQ(binder->driverOf(kPci).value_or("?"), "vfio-pci");
  EXPECT_FALSE(netdevExists()) << "an interface whose device left ena is gone";
  EXPECT_EQ(binder->pciAddressOf("eth1").error().code, ErrorCode::NotFound);
  ASSERT_TRUE(emulator->waitForOperations(3));
  EXPECT_EQ(summary(emulator->operations()),
            (std::vector<std::string>{"override vfio-pci", "unbind ena", "probe vfio-pci"}));
  EXPECT_EQ(emulator->operations()[0].pci, kPci);

  const std::string config = emulator->root() + "/../pcidp/config.json";
  fs::create_directories(fs::path(config).parent_path());
  SriovConfigFile sriov(config);
  ASSERT_TRUE(sriov.add({"intel.com", "dpdk_enis", bound->driver, bound->pciAddress}));
  EXPECT_NE(readFile(config).value_or("").find(R"("pciAddresses":["0000:00:06.0"])"),
            std::string::npos);

  auto restored = binder->restore(*bound);
  ASSERT_TRUE(restored) << restored.error().message << "\n" << emulator->output();
  EXPECT_EQ(binder->driverOf(kPci).value_or("?"), "ena");
  EXPECT_TRUE(netdevExists()) << "the interface is back with its device";
  EXPECT_EQ(binder->pciAddressOf("eth1").value_or("?"), kPci);
  ASSERT_TRUE(emulator->waitForOperations(6));
  EXPECT_EQ(summary(emulator->operations(), 3),
            (std::vector<std::string>{"override ", "unbind vfio-pci", "bind ena"}));
  ASSERT_TRUE(sriov.remove(kPci));
  EXPECT_EQ(readFile(config).value_or("?"), "{\"resourceList\":[]}\n");
}

TEST_F(DpdkSysfsTest, ADriverThatIsNotLoadedIsRefusedAndNothingIsWritten) {
  auto r = binder->bind(kPci, "igb_uio");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Invalid);
  EXPECT_NE(r.error().message.find("modprobe igb_uio"), std::string::npos) << r.error().message;
  // A bind that works is the barrier: whatever the refused one had written would come first.
  ASSERT_TRUE(binder->bind(kPci, "vfio-pci"));
  ASSERT_TRUE(emulator->waitForOperations(3));
  EXPECT_EQ(summary(emulator->operations()),
            (std::vector<std::string>{"override vfio-pci", "unbind ena", "probe vfio-pci"}));
}

TEST_F(DpdkSysfsTest, RestoreWithTheOriginalDriverUnloadedLeavesTheDeviceOnVfio) {
  auto bound = binder->bind(kPci, "vfio-pci");
  ASSERT_TRUE(bound) << bound.error().message;
  ASSERT_TRUE(emulator->unloadDriver("ena"));
  const std::size_t before = emulator->operations().size();

  auto r = binder->restore(*bound);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Invalid);
  EXPECT_NE(r.error().message.find("modprobe ena"), std::string::npos) << r.error().message;
  EXPECT_EQ(binder->driverOf(kPci).value_or("?"), "vfio-pci");

  // Loading ena again is the barrier; it takes no device bound elsewhere. Then restore works.
  ASSERT_TRUE(emulator->loadDriver("ena"));
  EXPECT_EQ(summary(emulator->operations(), before), (std::vector<std::string>{"load ena"}));
  EXPECT_EQ(binder->driverOf(kPci).value_or("?"), "vfio-pci");
  auto restored = binder->restore(*bound);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(binder->driverOf(kPci).value_or("?"), "ena");
  EXPECT_TRUE(netdevExists());
}

TEST_F(DpdkSysfsTest, TheEmulatorRefusesWhatTheKernelWouldAndChangesNothing) {
  ASSERT_TRUE(sysfs->write("bus/pci/drivers/vfio-pci/unbind", kPci));    // bound to ena, not it
  ASSERT_TRUE(sysfs->write("bus/pci/drivers_probe", "0000:00:07.0\n"));  // no such device
  ASSERT_TRUE(sysfs->write("bus/pci/drivers/vfio-pci/bind", kPci));      // bound already
  ASSERT_TRUE(emulator->waitForOperations(3));
  EXPECT_EQ(summary(emulator->operations()),
            (std::vector<std::string>{"error bound to ena, not vfio-pci (ENODEV)",
                                      "error no such device (ENODEV)",
                                      "error already bound to ena (EBUSY)"}));
  EXPECT_EQ(binder->driverOf(kPci).value_or("?"), "ena");
  EXPECT_TRUE(netdevExists());
  EXPECT_EQ(readFile(emulator->root() + "/bus/pci/drivers_probe").value_or("?"), "")
      << "every attribute is empty again after its write";
}

}  // namespace
}  // namespace eni
