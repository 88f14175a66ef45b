#include "agent/dpdk/pci_binder.h"

#include <string_view>

namespace eni {
namespace {

std::string devicePath(const std::string& pci) { return "bus/pci/devices/" + pci; }

std::string driverText(const std::string& driver) { return driver.empty() ? "no driver" : driver; }

Error notLoaded(const std::string& pciAddress, const std::string& driver,
                const std::string& current) {
  return Error{ErrorCode::Invalid, "driver " + driver +
                                       " is not loaded on this node (load it: modprobe " + driver +
                                       "); " + pciAddress + " stays on " + driverText(current)};
}

bool validInterfaceName(const std::string& name) {
  return !name.empty() && name.size() <= 15 && name != "." && name != ".." &&
         name.find('/') == std::string::npos;
}

}  // namespace

bool validPciAddress(const std::string& address) {
  // "DDDD:BB:DD.F": lower-case hex, the device 00-1f, the function 0-7.
  static constexpr std::string_view kShape = "xxxx:xx:dx.f";
  if (address.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    const char c = address[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    switch (kShape[i]) {
      case 'x':
        if (!hex) return false;
        break;
      case 'd':
        if (c != '0' && c != '1') return false;
        break;
      case 'f':
        if (c < '0' || c > '7') return false;
        break;
      default:
        if (c != kShape[i]) return false;
    }
  }
  return true;
}

bool validDriverName(const std::string& driver) {
  if (driver.empty() || driver.size() > 64) return false;
  for (char c : driver) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::string> PciBinder::pciAddressOf(const std::string& interfaceName) const {
  if (!validInterfaceName(interfaceName))
    return fail(ErrorCode::Invalid, "\"" + interfaceName + "\" is not an interface name");
  auto address = sysfs_.linkName("class/net/" + interfaceName + "/device");
  if (!address)
    return fail(ErrorCode::NotFound, "interface " + interfaceName + " has no PCI device");
  if (!validPciAddress(*address))
    return fail(ErrorCode::NotFound,
                "interface " + interfaceName + "'s device " + *address + " is not a PCI device");
  return *address;
}

Result<std::string> PciBinder::driverOf(const std::string& pciAddress) const {
  if (!validPciAddress(pciAddress))
    return fail(ErrorCode::Invalid, "\"" + pciAddress + "\" is not a PCI address (0000:00:06.0)");
  if (!sysfs_.exists(devicePath(pciAddress)))
    return fail(ErrorCode::NotFound, "no PCI device " + pciAddress);
  auto driver = sysfs_.linkName(devicePath(pciAddress) + "/driver");
  if (!driver) return driver.error().code == ErrorCode::NotFound ? std::string() : driver;
  return driver;
}

Result<void> PciBinder::unbind(const std::string& device, const std::string& current) const {
  if (current.empty()) return {};
  return sysfs_.write("bus/pci/drivers/" + current + "/unbind", device);
}

// The driver link is re-read, a bounded number of times, until it shows what the last write
// should have done. The real kernel unbinds synchronously, but a driver that probes
// asynchronously (PROBE_PREFER_ASYNCHRONOUS, or the driver_async_probe= boot option) returns from
// the drivers_probe or bind write before its probe has linked the device, and the tests' sysfs
// emulator answers every write asynchronously. Without a sleeper the link is read once.
Result<std::string> PciBinder::settledDriver(
    const std::string& pciAddress, const std::function<bool(const std::string&)>& settled) const {
  auto driver = driverOf(pciAddress);
  for (int step = 0; settle_ != nullptr && step < settleSteps_ && driver && !settled(*driver);
       ++step) {
    settle_->sleepFor(settleStep_);
    driver = driverOf(pciAddress);
  }
  return driver;
}

Result<PciBinding> PciBinder::bind(const std::string& pciAddress, const std::string& driver) const {
  if (!validDriverName(driver))
    return fail(ErrorCode::Invalid, "\"" + driver + "\" is not a kernel driver name");
  auto current = driverOf(pciAddress);
  if (!current) return fail(current.error());
  PciBinding binding{pciAddress, driver, *current};
  if (*current == driver) return binding;
  if (!sysfs_.exists("bus/pci/drivers/" + driver))
    return fail(notLoaded(pciAddress, driver, *current));
  const std::string device = devicePath(pciAddress);
  if (auto ok = sysfs_.write(device + "/driver_override", driver); !ok) return fail(ok.error());
  if (auto ok = unbind(pciAddress, *current); !ok) return fail(ok.error());
  // Only a wait: whether the device ended up where it should is checked after the probe.
  if (auto gone = settledDriver(pciAddress, [](const std::string& d) { return d.empty(); }); !gone)
    return fail(gone.error());
  if (auto ok = sysfs_.write("bus/pci/drivers_probe", pciAddress); !ok) return fail(ok.error());
  auto now = settledDriver(pciAddress, [&](const std::string& d) { return d == driver; });
  if (!now) return fail(now.error());
  if (*now != driver) {
    return fail(ErrorCode::Transient, pciAddress + " is bound to " + driverText(*now) + ", not " +
                                          driver + ", after the probe");
  }
  return binding;
}

Result<void> PciBinder::restore(const PciBinding& binding) const {
  const std::string& original = binding.originalDriver;
  if (!original.empty() && !validDriverName(original))
    return fail(ErrorCode::Invalid, "\"" + original + "\" is not a driver name");
  auto current = driverOf(binding.pciAddress);
  if (!current) return fail(current.error());
  // Checked before the unbind: without its original driver the device would be left on none, of
  // no use to DPDK and the kernel alike.
  if (*current != original && !original.empty() && !sysfs_.exists("bus/pci/drivers/" + original))
    return fail(notLoaded(binding.pciAddress, original, *current));
  const std::string device = devicePath(binding.pciAddress);
  // A newline clears the override (an empty write is refused by some kernels).
  if (auto ok = sysfs_.write(device + "/driver_override", "\n"); !ok) return fail(ok.error());
  if (*current == original) return {};
  if (auto ok = unbind(binding.pciAddress, *current); !ok) return fail(ok.error());
  if (auto gone = settledDriver(binding.pciAddress, [](const std::string& d) { return d.empty(); });
      !gone)
    return fail(gone.error());
  const std::string target =
      original.empty() ? "bus/pci/drivers_probe" : "bus/pci/drivers/" + original + "/bind";
  if (auto ok = sysfs_.write(target, binding.pciAddress); !ok) return fail(ok.error());
  // With no original driver the kernel's choice may be none: wait for one, accept none.
  auto now = settledDriver(binding.pciAddress, [&](const std::string& d) {
    return original.empty() ? !d.empty() : d == original;
  });
  if (!now) return fail(now.error());
  if (!original.empty() && *now != original) {
    return fail(ErrorCode::Transient, binding.pciAddress + " is bound to " + driverText(*now) +
                                          ", not " + original + ", after the bind");
  }
  return {};
}

}  // namespace eni
