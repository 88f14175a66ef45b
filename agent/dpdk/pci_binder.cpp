#include "agent/dpdk/pci_binder.h"

#include <string_view>

namespace eni {
namespace {

std::string devicePath(const std::string& pci) { return "bus/pci/devices/" + pci; }

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

Result<PciBinding> PciBinder::bind(const std::string& pciAddress, const std::string& driver) const {
  if (!validDriverName(driver))
    return fail(ErrorCode::Invalid, "\"" + driver + "\" is not a kernel driver name");
  auto current = driverOf(pciAddress);
  if (!current) return fail(current.error());
  PciBinding binding{pciAddress, driver, *current};
  if (*current == driver) return binding;
  if (!sysfs_.exists("bus/pci/drivers/" + driver)) {
    return fail(ErrorCode::Invalid, "driver " + driver + " is not loaded on this node (load it: " +
                                        "modprobe " + driver + "); " + pciAddress + " stays on " +
                                        (current->empty() ? "no driver" : *current));
  }
  const std::string device = devicePath(pciAddress);
  if (auto ok = sysfs_.write(device + "/driver_override", driver); !ok) return fail(ok.error());
  if (auto ok = unbind(pciAddress, *current); !ok) return fail(ok.error());
  if (auto ok = sysfs_.write("bus/pci/drivers_probe", pciAddress); !ok) return fail(ok.error());
  auto now = driverOf(pciAddress);
  if (!now) return fail(now.error());
  if (*now != driver) {
    return fail(ErrorCode::Transient, pciAddress + " is bound to " +
                                          (now->empty() ? "no driver" : *now) + ", not " + driver +
                                          ", after the probe");
  }
  return binding;
}

Result<void> PciBinder::restore(const PciBinding& binding) const {
  if (!binding.originalDriver.empty() && !validDriverName(binding.originalDriver))
    return fail(ErrorCode::Invalid, "\"" + binding.originalDriver + "\" is not a driver name");
  auto current = driverOf(binding.pciAddress);
  if (!current) return fail(current.error());
  const std::string device = devicePath(binding.pciAddress);
  // A newline clears the override (an empty write is refused by some kernels).
  if (auto ok = sysfs_.write(device + "/driver_override", "\n"); !ok) return fail(ok.error());
  if (*current == binding.originalDriver) return {};
  if (auto ok = unbind(binding.pciAddress, *current); !ok) return fail(ok.error());
  const std::string target = binding.originalDriver.empty()
                                 ? "bus/pci/drivers_probe"
                                 : "bus/pci/drivers/" + binding.originalDriver + "/bind";
  if (auto ok = sysfs_.write(target, binding.pciAddress); !ok) return fail(ok.error());
  auto now = driverOf(binding.pciAddress);
  if (!now) return fail(now.error());
  if (!binding.originalDriver.empty() && *now != binding.originalDriver) {
    return fail(ErrorCode::Transient, binding.pciAddress + " is bound to " +
                                          (now->empty() ? "no driver" : *now) + ", not " +
                                          binding.originalDriver + ", after the bind");
  }
  return {};
}

}  // namespace eni
