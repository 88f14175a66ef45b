#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/error.h"
#include "tests/support/test_stack.h"

namespace eni::testing {

/// A PCI device of the emulated tree: `interfaceName` exists under class/net while the device is
/// bound to a netdev driver (ena); `driver` is its default driver, which it starts bound to.
struct SysfsDevice {
  std::string pciAddress;     // "0000:00:06.0"
  std::string interfaceName;  // "eth1"
  std::string mac;            // "02:aa:00:00:00:01"; empty for none
  std::string driver = "ena";
};

struct SysfsEmulatorOptions {
  std::vector<std::string> drivers = {"ena", "vfio-pci"};  // loaded at start
  std::vector<SysfsDevice> devices;
  /// With a network namespace (its path, /run/netns/...; root only), a device's interface is
  /// deleted there when it leaves ena and created again as a veth with its MAC when it returns.
  std::string netnsPath;
};

/// One JSON line of the emulator's: what it did with one write ("override", "unbind", "probe",
/// "bind", "load", "unload", "link-del", "link-add") or "error" with the reason.
struct SysfsOperation {
  std::string op;
  std::string pci;
  std::string driver;
  std::string ifname;
  std::string mac;
  std::string reason;
};

/// tests/env/sysfs_emulator.py running beside the test: a directory tree laid out like /sys's PCI
/// part whose attribute writes (driver_override, unbind, bind, drivers_probe) it answers as the
/// kernel would, asynchronously. Never a real device. The process is stopped and the tree removed
/// on destruction. Any thread, one at a time.
class SysfsEmulator {
 public:
  /// Builds the tree in a fresh temporary directory and waits (at most `limit`) until the
  /// emulator says it is ready. Internal, with the emulator's output, when it does not come up.
  [[nodiscard]] static Result<std::unique_ptr<SysfsEmulator>> start(
      const SysfsEmulatorOptions& options, Duration limit = Duration(30000));
  ~SysfsEmulator();
  SysfsEmulator(const SysfsEmulator&) = delete;
  SysfsEmulator& operator=(const SysfsEmulator&) = delete;

  /// The directory that stands for /sys: FileSysfs(root()).
  const std::string& root() const { return root_; }
  /// Every operation logged so far, in order (not the "ready" line).
  std::vector<SysfsOperation> operations() const;
  /// Waits (at most `limit`) until at least `count` operations are logged; whether they were.
  bool waitForOperations(std::size_t count, Duration limit = Duration(10000)) const;
  /// Unloads a driver as rmmod does: its devices are unbound and bus/pci/drivers/<driver> goes.
  /// Returns once the emulator has logged it; Internal after `limit` or when it refused.
  [[nodiscard]] Result<void> unloadDriver(const std::string& driver,
                                          Duration limit = Duration(10000));
  /// Loads a driver as modprobe does: its directory is back and it takes the unbound devices
  /// that match it (their override, else their default driver).
  [[nodiscard]] Result<void> loadDriver(const std::string& driver,
                                        Duration limit = Duration(10000));
  /// Everything the emulator wrote to stdout and stderr, for failure messages.
  std::string output() const { return process_->output(); }

 private:
  SysfsEmulator(std::string dir, std::unique_ptr<BackgroundProcess> process);
  Result<void> control(const std::string& verb, const std::string& driver, Duration limit);

  std::string dir_;
  std::string root_;
  std::unique_ptr<BackgroundProcess> process_;
};

}  // namespace eni::testing
