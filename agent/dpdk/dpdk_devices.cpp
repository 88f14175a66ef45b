#include "agent/dpdk/dpdk_devices.h"

namespace eni {

std::string dpdkSpecProblem(const std::string& driver, const std::string& pciAddress,
                            const std::string& resourceName) {
  // Shorter than the kernel allows, so that a NodeENIAttachment's 128 entries stay under 64 KiB.
  if (!driver.empty() && (!validDriverName(driver) || driver.size() > kMaxDpdkDriver))
    return "dpdkDriver \"" + driver + "\" is not a kernel driver name of at most " +
           std::to_string(kMaxDpdkDriver) + " characters (e.g. vfio-pci)";
  if (!pciAddress.empty() && !validPciAddress(pciAddress))
    return "dpdkPCIAddress \"" + pciAddress + "\" is not a PCI address (e.g. 0000:00:06.0)";
  if (resourceName.empty()) return "";
  if (resourceName.size() > kMaxDpdkResourceName)
    return "dpdkResourceName is longer than " + std::to_string(kMaxDpdkResourceName) +
           " characters";
  auto resource = sriovResource(resourceName);
  return resource ? "" : resource.error().message;
}

Result<PciBinding> DpdkDevices::bind(const DpdkRequest& request) const {
  std::string pci = request.pciAddress;
  if (pci.empty()) {
    auto found = binder_.pciAddressOf(request.interfaceName);
    if (!found) return fail(found.error());
    pci = *found;
  }
  const std::string driver = request.driver.empty() ? kDefaultDpdkDriver : request.driver;
  auto binding = binder_.bind(pci, driver);
  if (!binding) return binding;
  if (binding->originalDriver == driver) binding->originalDriver.clear();
  if (request.resourceName.empty()) return binding;
  auto device = sriovResource(request.resourceName);
  Result<void> listed = device ? Result<void>{} : fail(device.error());
  if (device) {
    device->driver = driver;
    device->pciAddress = pci;
    listed = config_.add(*device);
  }
  if (listed) return binding;
  Error error = listed.error();
  error.message = "cannot list " + pci + " in " + config_.path() + ": " + error.message;
  if (auto back = binder_.restore(*binding); !back)
    error.message += "; and cannot give it back: " + back.error().message;
  return fail(std::move(error));
}

Result<void> DpdkDevices::release(const PciBinding& binding) const {
  if (auto back = binder_.restore(binding); !back) return back;
  return config_.remove(binding.pciAddress);
}

}  // namespace eni
