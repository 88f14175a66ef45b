#pragma once

#include <functional>
#include <string>

#include "agent/base/clock.h"
#include "agent/base/error.h"
#include "agent/dpdk/sysfs.h"

namespace eni {

/// A PCI device bound to a DPDK driver, and the driver it had before (what a release restores).
struct PciBinding {
  std::string pciAddress;      // "0000:00:06.0"
  std::string driver;          // the driver it is bound to now, e.g. "vfio-pci"
  std::string originalDriver;  // the driver it had, e.g. "ena"; empty when it had none
  bool operator==(const PciBinding&) const = default;
};

/// True for a PCI address in sysfs form, "DDDD:BB:DD.F" in lower-case hex (domain, bus, device,
/// function 0-7). Nothing else reaches a sysfs path.
bool validPciAddress(const std::string& address);
/// True for a kernel driver name: 1-64 of [a-z0-9_-] (no path separator, no dot).
bool validDriverName(const std::string& driver);

/// Binds an ENI's PCI device to a userspace driver (vfio-pci, igb_uio, ...) and back, by sysfs
/// writes alone, as the kernel documents them (Documentation/ABI/testing/sysfs-bus-pci):
/// driver_override, the current driver's unbind, then drivers_probe; restoring clears the
/// override, unbinds and binds the original driver. Every step is checked against the device's
/// driver link afterwards. Inputs are validated before any path is built from them.
///
/// With a `settle` sleeper, the driver link is re-read up to `settleSteps` times, `settleStep`
/// apart, while it does not yet show the outcome of an unbind, a probe or a bind (drivers that
/// probe asynchronously show it late). Without one (nullptr) it is read once. The sleeper blocks
/// the calling thread: call from a worker, not the event loop, when it is set. Not owned.
class PciBinder {
 public:
  explicit PciBinder(Sysfs& sysfs, Sleeper* settle = nullptr, int settleSteps = 50,
                     Duration settleStep = Duration(20))
      : sysfs_(sysfs), settle_(settle), settleSteps_(settleSteps), settleStep_(settleStep) {}

  /// The PCI address behind a network interface (class/net/<if>/device). NotFound when the
  /// interface has no PCI device (a veth, a virtual interface), Invalid for a bad name.
  [[nodiscard]] Result<std::string> pciAddressOf(const std::string& interfaceName) const;
  /// The driver the device is bound to; empty when none.
  [[nodiscard]] Result<std::string> driverOf(const std::string& pciAddress) const;
  /// Binds the device to `driver`. Invalid when the driver is not loaded (its directory under
  /// bus/pci/drivers is missing): the message says which module to load. A device already bound
  /// to it is left as it is.
  [[nodiscard]] Result<PciBinding> bind(const std::string& pciAddress,
                                        const std::string& driver) const;
  /// Gives the device back to its original driver (or the kernel's choice when it had none) and
  /// clears the override. A device already back is left as it is. Invalid, with nothing written,
  /// when the original driver is not loaded: the device stays on the driver it has.
  [[nodiscard]] Result<void> restore(const PciBinding& binding) const;

 private:
  Result<void> unbind(const std::string& device, const std::string& current) const;
  Result<std::string> settledDriver(const std::string& pciAddress,
                                    const std::function<bool(const std::string&)>& settled) const;
  Sysfs& sysfs_;
  Sleeper* settle_;
  int settleSteps_;
  Duration settleStep_;
};

}  // namespace eni
