#pragma once

#include <functional>
#include <string>

#include <json/value.h>

#include "agent/base/error.h"

namespace eni {

/// One device for the SR-IOV network device plugin's config (its `resourceList` format).
struct SriovDevice {
  std::string resourcePrefix;  // "intel.com"; empty: the plugin's default
  std::string resourceName;    // "intel_sriov_dpdk"
  std::string driver;          // "vfio-pci"
  std::string pciAddress;      // "0000:00:06.0"
};

/// A NodeENI's dpdkResourceName, "prefix/name" or "name", into a device's prefix and name. Invalid
/// (saying what the form is) for anything else: the name is 1-63 of [A-Za-z0-9_.-], the prefix a
/// DNS name.
[[nodiscard]] Result<SriovDevice> sriovResource(const std::string& dpdkResourceName);

/// The config with the device in it: added to the resource of the same prefix and name (its
/// pciAddresses and drivers gain it, nothing else changes), or a new resource at the end. Every
/// other resource and field, written by others, stays as it is. Invalid when the config is not
/// an object with an array resourceList.
[[nodiscard]] Result<Json::Value> withSriovDevice(Json::Value config, const SriovDevice& device);
/// The config without the PCI address in any resource. A resource left with no PCI address is
/// removed: an empty selector would select every device.
[[nodiscard]] Result<Json::Value> withoutSriovDevice(Json::Value config,
                                                     const std::string& pciAddress);

/// The config file (default /etc/pcidp/config.json), read, changed and replaced atomically. A
/// missing file counts as an empty config; a malformed one is an error and is never overwritten.
class SriovConfigFile {
 public:
  explicit SriovConfigFile(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] Result<void> add(const SriovDevice& device) const;
  [[nodiscard]] Result<void> remove(const std::string& pciAddress) const;
  const std::string& path() const { return path_; }

 private:
  Result<Json::Value> read() const;
  /// Read, edit, and write back only when the edit changed something.
  Result<void> change(const std::function<Result<Json::Value>(Json::Value)>& edit) const;
  Result<void> write(const Json::Value& config) const;
  std::string path_;
};

}  // namespace eni
