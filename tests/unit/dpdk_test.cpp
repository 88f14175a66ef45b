// agent/dpdk on directory trees that mimic /sys/bus/pci and /etc/pcidp: never a real device.
// SimulatedSysfs writes the files as FileSysfs does and then plays the kernel's part of each write
// (unbind drops the driver link, drivers_probe follows driver_override, bind links the driver).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/dpdk/dpdk_devices.h"
#include "agent/dpdk/pci_binder.h"
#include "agent/dpdk/sriov_config.h"
#include "agent/dpdk/sysfs.h"

namespace eni {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPci = "0000:00:06.0";

struct TempTree {
  TempTree() {
    root = fs::temp_directory_path() /
           ("eni-dpdk-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(root);
  }
  ~TempTree() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
  void file(const std::string& path, const std::string& content = "") const {
    fs::create_directories((root / path).parent_path());
    std::ofstream(root / path) << content;
  }
  void link(const std::string& path, const std::string& target) const {
    fs::create_directories((root / path).parent_path());
    fs::remove(root / path);
    fs::create_symlink(target, root / path);
  }
  std::string read(const std::string& path) const { return readFile(root / path).value_or("?"); }
  fs::path root;
};

class SimulatedSysfs final : public Sysfs {
 public:
  explicit SimulatedSysfs(const TempTree& tree) : tree_(tree), files_(tree.root.string()) {}
  Result<void> write(const std::string& path, const std::string& value) override {
    writes.push_back(path + "=" + value);
    if (auto ok = files_.write(path, value); !ok) return ok;
    const std::string device = "bus/pci/devices/" + value;
    if (path.ends_with("/unbind")) {
      fs::remove(tree_.root / device / "driver");
    } else if (path == "bus/pci/drivers_probe") {
      std::string wanted = tree_.read(device + "/driver_override");
      if (wanted.empty() || wanted == "\n") wanted = "ena";  // the kernel's own match
      if (refuse != wanted && fs::exists(tree_.root / "bus/pci/drivers" / wanted))
        tree_.link(device + "/driver", "../../../../bus/pci/drivers/" + wanted);
    } else if (path.ends_with("/bind")) {
      const std::string driver = fs::path(path).parent_path().filename();
      tree_.link(device + "/driver", "../../../../bus/pci/drivers/" + driver);
    }
    return {};
  }
  Result<std::string> linkName(const std::string& path) const override {
    return files_.linkName(path);
  }
  bool exists(const std::string& path) const override { return files_.exists(path); }

  std::vector<std::string> writes;
  std::string refuse;  // a driver whose probe does not take the device

 private:
  const TempTree& tree_;
  FileSysfs files_;
};

// An ENA device at 0000:00:06.0 behind eth1, the ena and vfio-pci drivers loaded.
TempTree pciTree() {
  TempTree t;
  for (const char* driver : {"ena", "vfio-pci"}) {
    t.file(std::string("bus/pci/drivers/") + driver + "/bind");
    t.file(std::string("bus/pci/drivers/") + driver + "/unbind");
  }
  t.file("bus/pci/drivers_probe");
  t.file(std::string("bus/pci/devices/") + kPci + "/driver_override");
  t.link(std::string("bus/pci/devices/") + kPci + "/driver", "../../../../bus/pci/drivers/ena");
  t.link("class/net/eth1/device", std::string("../../../bus/pci/devices/") + kPci);
  fs::create_directories(t.root / "class/net/veth0");  // no device: not PCI
  return t;
}

TEST(PciAddress, OnlyTheSysfsFormPasses) {
  EXPECT_TRUE(validPciAddress("0000:00:06.0"));
  EXPECT_TRUE(validPciAddress("0000:af:1f.7"));
  for (const char* bad : {"", "0000:00:06", "0000:00:20.0", "0000:00:06.8", "0000:00:06.0/..",
                          "../../../etc", "0000:AF:06.0", " 0000:00:06.0"}) {
    EXPECT_FALSE(validPciAddress(bad)) << bad;
  }
  EXPECT_TRUE(validDriverName("vfio-pci"));
  EXPECT_TRUE(validDriverName("igb_uio"));
  for (const char* bad : {"", "..", "vfio/pci", "Vfio", "a b"}) EXPECT_FALSE(validDriverName(bad));
}

TEST(PciBinder, FindsTheDeviceBehindAnInterface) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  EXPECT_EQ(binder.pciAddressOf("eth1").value_or("?"), kPci);
  auto veth = binder.pciAddressOf("veth0");
  ASSERT_FALSE(veth);
  EXPECT_EQ(veth.error().code, ErrorCode::NotFound);
  auto bad = binder.pciAddressOf("../eth1");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::Invalid);
}

TEST(PciBinder, BindsThroughOverrideUnbindProbeAndRestoresTheOriginalDriver) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  auto bound = binder.bind(kPci, "vfio-pci");
  ASSERT_TRUE(bound) << bound.error().message;
  EXPECT_EQ(*bound, (PciBinding{kPci, "vfio-pci", "ena"}));
  EXPECT_EQ(binder.driverOf(kPci).value_or("?"), "vfio-pci");
  EXPECT_EQ(sysfs.writes,
            (std::vector<std::string>{"bus/pci/devices/0000:00:06.0/driver_override=vfio-pci",
                                      "bus/pci/drivers/ena/unbind=0000:00:06.0",
                                      "bus/pci/drivers_probe=0000:00:06.0"}));
  sysfs.writes.clear();
  auto again = binder.bind(kPci, "vfio-pci");
  ASSERT_TRUE(again);
  EXPECT_TRUE(sysfs.writes.empty()) << "already bound: nothing written";

  ASSERT_TRUE(binder.restore(*bound));
  EXPECT_EQ(binder.driverOf(kPci).value_or("?"), "ena");
  EXPECT_EQ(sysfs.writes,
            (std::vector<std::string>{"bus/pci/devices/0000:00:06.0/driver_override=\n",
                                      "bus/pci/drivers/vfio-pci/unbind=0000:00:06.0",
                                      "bus/pci/drivers/ena/bind=0000:00:06.0"}));
}

TEST(PciBinder, ADriverThatIsNotLoadedIsAClearErrorAndNothingIsWritten) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  auto r = binder.bind(kPci, "igb_uio");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Invalid);
  EXPECT_NE(r.error().message.find("modprobe igb_uio"), std::string::npos) << r.error().message;
  EXPECT_TRUE(sysfs.writes.empty());
  EXPECT_EQ(binder.driverOf(kPci).value_or("?"), "ena");
}

TEST(PciBinder, BadInputReachesNoPath) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  EXPECT_EQ(binder.bind("../../../etc/passwd", "vfio-pci").error().code, ErrorCode::Invalid);
  EXPECT_EQ(binder.bind(kPci, "../ena").error().code, ErrorCode::Invalid);
  EXPECT_EQ(binder.bind("0000:00:07.0", "vfio-pci").error().code, ErrorCode::NotFound);
  EXPECT_TRUE(sysfs.writes.empty());
}

TEST(PciBinder, AProbeThatDoesNotTakeTheDeviceIsAnError) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  sysfs.refuse = "vfio-pci";  // e.g. no IOMMU group
  PciBinder binder(sysfs);
  auto r = binder.bind(kPci, "vfio-pci");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not vfio-pci"), std::string::npos) << r.error().message;
}

// A device whose driver link shows each write's outcome only after `lag` more reads (an
// asynchronous probe, or the tests' emulator), over SimulatedSysfs.
class LateSysfs final : public Sysfs {
 public:
  LateSysfs(SimulatedSysfs& inner, int lag) : inner_(inner), lag_(lag) {}
  Result<void> write(const std::string& path, const std::string& value) override {
    before_ = inner_.linkName(std::string("bus/pci/devices/") + kPci + "/driver");
    pending_ = lag_;
    return inner_.write(path, value);
  }
  Result<std::string> linkName(const std::string& path) const override {
    if (path.ends_with("/driver") && pending_ > 0) {
      --pending_;
      return before_;
    }
    return inner_.linkName(path);
  }
  bool exists(const std::string& path) const override { return inner_.exists(path); }

 private:
  SimulatedSysfs& inner_;
  int lag_;
  mutable int pending_ = 0;
  Result<std::string> before_ = fail(ErrorCode::NotFound, "no link");
};

class CountingSleeper final : public Sleeper {
 public:
  void sleepFor(Duration duration) override { sleeps.push_back(duration); }
  std::vector<Duration> sleeps;
};

TEST(PciBinder, WaitsForADriverLinkThatShowsLate) {
  TempTree t = pciTree();
  SimulatedSysfs simulated(t);
  LateSysfs sysfs(simulated, 3);
  CountingSleeper sleeper;
  PciBinder binder(sysfs, &sleeper, 5, Duration(7));
  auto bound = binder.bind(kPci, "vfio-pci");
  ASSERT_TRUE(bound) << bound.error().message;
  // Three stale reads after the unbind, three after the probe.
  EXPECT_EQ(sleeper.sleeps, std::vector<Duration>(6, Duration(7)));
  EXPECT_EQ(simulated.writes.size(), 3u);

  sleeper.sleeps.clear();
  ASSERT_TRUE(binder.restore(*bound));
  EXPECT_EQ(sleeper.sleeps.size(), 6u);
  EXPECT_EQ(binder.driverOf(kPci).value_or("?"), "ena");

  // The same late link read once, as without a sleeper: the probe looks like it failed.
  LateSysfs late(simulated, 3);
  PciBinder impatient(late);
  auto r = impatient.bind(kPci, "vfio-pci");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
}

TEST(PciBinder, ALinkThatNeverSettlesIsTransientAfterTheLastStep) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  sysfs.refuse = "vfio-pci";
  CountingSleeper sleeper;
  PciBinder binder(sysfs, &sleeper, 4, Duration(9));
  auto r = binder.bind(kPci, "vfio-pci");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Transient);
  EXPECT_NE(r.error().message.find("no driver, not vfio-pci"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(sleeper.sleeps, std::vector<Duration>(4, Duration(9)));
}

TEST(PciBinder, RestoreWithoutTheOriginalDriverLoadedWritesNothing) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  auto bound = binder.bind(kPci, "vfio-pci");
  ASSERT_TRUE(bound) << bound.error().message;
  fs::remove_all(t.root / "bus/pci/drivers/ena");  // the module was unloaded meanwhile
  sysfs.writes.clear();
  auto r = binder.restore(*bound);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::Invalid);
  EXPECT_NE(r.error().message.find("modprobe ena"), std::string::npos) << r.error().message;
  EXPECT_TRUE(sysfs.writes.empty());
  EXPECT_EQ(binder.driverOf(kPci).value_or("?"), "vfio-pci");
}

TEST(SriovConfig, MergesWithWhatOthersWroteAndRemovesOnlyItsOwn) {
  TempTree t;
  t.file(
      "pcidp/config.json",
      R"({"resourceList":[{"resourceName":"other","selectors":{"pciAddresses":["0000:00:09.0"]}},)"
      R"({"resourcePrefix":"intel.com","resourceName":"intel_sriov_dpdk","selectors":)"
      R"({"drivers":["igb_uio"],"pciAddresses":["0000:00:08.0"]},"extra":1}],"logLevel":3})");
  SriovConfigFile file((t.root / "pcidp/config.json").string());
  auto device = sriovResource("intel.com/intel_sriov_dpdk");
  ASSERT_TRUE(device);
  device->driver = "vfio-pci";
  device->pciAddress = kPci;
  ASSERT_TRUE(file.add(*device));
  ASSERT_TRUE(file.add(*device));  // idempotent
  auto config = parseJson(t.read("pcidp/config.json"));
  ASSERT_TRUE(config);
  EXPECT_EQ((*config)["logLevel"].asInt(), 3);
  ASSERT_EQ((*config)["resourceList"].size(), 2u);
  const Json::Value& mine = (*config)["resourceList"][1];
  EXPECT_EQ(mine["extra"].asInt(), 1);
  EXPECT_EQ(toJson(mine["selectors"]),
            R"({"drivers":["igb_uio","vfio-pci"],"pciAddresses":["0000:00:08.0","0000:00:06.0"]})");

  ASSERT_TRUE(file.remove(kPci));
  ASSERT_TRUE(file.remove("0000:00:08.0"));
  config = parseJson(t.read("pcidp/config.json"));
  ASSERT_TRUE(config);
  ASSERT_EQ((*config)["resourceList"].size(), 1u) << "a resource left with no address goes";
  EXPECT_EQ((*config)["resourceList"][0]["resourceName"].asString(), "other");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(t.root / "pcidp"))
    names.push_back(e.path().filename());
  EXPECT_EQ(names, (std::vector<std::string>{"config.json"})) << "no temporary file left";
}

TEST(SriovConfig, ANewFileAndAMalformedOne) {
  TempTree t;
  fs::create_directories(t.root / "pcidp");
  SriovConfigFile file((t.root / "pcidp/config.json").string());
  SriovDevice d{"", "dpdk_enis", "vfio-pci", kPci};
  ASSERT_TRUE(file.add(d));
  EXPECT_EQ(t.read("pcidp/config.json"),
            R"({"resourceList":[{"resourceName":"dpdk_enis","selectors":{"drivers":["vfio-pci"],)"
            R"("pciAddresses":["0000:00:06.0"]}}]})"
            "\n");
  t.file("pcidp/config.json", "{not json");
  auto r = file.add(d);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("left unchanged"), std::string::npos);
  EXPECT_EQ(t.read("pcidp/config.json"), "{not json");
  EXPECT_FALSE(sriovResource("a/b/c"));
  EXPECT_FALSE(sriovResource("intel.com/"));
  EXPECT_FALSE(sriovResource("../x"));
}

// DpdkDevices: bind then list, give back then unlist; a config it cannot write leaves no device
// bound that no record would name.
TEST(DpdkDevices, BindsAndListsThenGivesBackAndUnlists) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  SriovConfigFile config((t.root / "config.json").string());
  DpdkDevices devices(binder, config);
  auto bound = devices.bind({"eth1", "", "", "intel.com/sriov_dpdk"});
  ASSERT_TRUE(bound) << bound.error().message;
  EXPECT_EQ(*bound, (PciBinding{kPci, "vfio-pci", "ena"}));
  EXPECT_EQ(t.read("bus/pci/devices/0000:00:06.0/driver_override"), "vfio-pci");
  auto listed = parseJson(t.read("config.json"));
  ASSERT_TRUE(listed);
  EXPECT_EQ((*listed)["resourceList"][0]["resourcePrefix"].asString(), "intel.com");
  EXPECT_EQ((*listed)["resourceList"][0]["selectors"]["pciAddresses"][0].asString(), kPci);
  ASSERT_TRUE(devices.release(*bound));
  EXPECT_EQ(*binder.driverOf(kPci), "ena");
  auto unlisted = parseJson(t.read("config.json"));
  ASSERT_TRUE(unlisted);
  EXPECT_EQ((*unlisted)["resourceList"].size(), 0u);
  // A device found on the wanted driver already (its record lost): the kernel's choice on release.
  ASSERT_TRUE(binder.bind(kPci, "vfio-pci"));
  auto again = devices.bind({"", kPci, "vfio-pci", ""});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->originalDriver, "");
}

TEST(DpdkDevices, AConfigItCannotWriteGivesTheDeviceBack) {
  TempTree t = pciTree();
  SimulatedSysfs sysfs(t);
  PciBinder binder(sysfs);
  t.file("config.json", "{not json");
  SriovConfigFile config((t.root / "config.json").string());
  DpdkDevices devices(binder, config);
  auto bound = devices.bind({"", kPci, "vfio-pci", "sriov_dpdk"});
  ASSERT_FALSE(bound);
  EXPECT_NE(bound.error().message.find("cannot list 0000:00:06.0 in"), std::string::npos)
      << bound.error().message;
  EXPECT_EQ(*binder.driverOf(kPci), "ena");
  EXPECT_EQ(t.read("config.json"), "{not json");
  // A driver that is not loaded: refused before any write, with what to do.
  auto missing = devices.bind({"eth1", "", "igb_uio", ""});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("modprobe igb_uio"), std::string::npos);
}

}  // namespace
}  // namespace eni
