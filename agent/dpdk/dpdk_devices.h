#pragma once

#include <string>

#include "agent/base/error.h"
#include "agent/dpdk/pci_binder.h"
#include "agent/dpdk/sriov_config.h"

namespace eni {

/// The driver a NodeENI with enableDPDK and no dpdkDriver gets, as aws-multi-eni-controller's.
inline constexpr const char* kDefaultDpdkDriver = "vfio-pci";
/// The longest dpdkDriver and dpdkResourceName taken (the NodeENIAttachment CRD's bounds).
inline constexpr std::size_t kMaxDpdkDriver = 32;
inline constexpr std::size_t kMaxDpdkResourceName = 127;

/// What binding one ENI's device asks for: a NodeENI's DPDK fields and the ENI's interface.
struct DpdkRequest {
  std::string interfaceName;  // the ENI's netdev as the kernel names it; may be empty when
  std::string pciAddress;     // ... dpdkPCIAddress names the device
  std::string driver;         // dpdkDriver; empty: kDefaultDpdkDriver
  std::string resourceName;   // dpdkResourceName; empty: no device plugin entry
};

/// Why a NodeENI's DPDK fields cannot be acted on (a driver, PCI address or resource name of the
/// wrong form), or "" when they can. Pure.
std::string dpdkSpecProblem(const std::string& driver, const std::string& pciAddress,
                            const std::string& resourceName);

/// Hands ENIs' PCI devices to DPDK drivers and lists them in the SR-IOV device plugin's config,
/// and gives them back. sysfs and file work that may wait for a driver to settle: call it on a
/// worker thread, never the loop thread.
class DpdkDevices {
 public:
  DpdkDevices(const PciBinder& binder, const SriovConfigFile& config)
      : binder_(binder), config_(config) {}

  /// Binds the device (dpdkPCIAddress, else the interface's) to the driver, then adds it to the
  /// device plugin's config under the resource name. When the config cannot be written the device
  /// is given back, so that nothing is left bound that no record names. The binding's original
  /// driver is empty when the device was on the wanted driver already (a binding whose record was
  /// lost): a release then lets the kernel choose, which on EC2 is ena.
  [[nodiscard]] Result<PciBinding> bind(const DpdkRequest& request) const;
  /// Gives the device back to its original driver, then takes it out of the config. Either step
  /// failing is the error (the caller keeps the ENI attached); both are no-ops when already done.
  [[nodiscard]] Result<void> release(const PciBinding& binding) const;

 private:
  const PciBinder& binder_;
  const SriovConfigFile& config_;
};

}  // namespace eni
