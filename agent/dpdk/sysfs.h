#pragma once

#include <string>

#include "agent/base/error.h"

namespace eni {

/// The few sysfs operations PCI driver binding needs, relative to a root ("/sys" in production,
/// a directory tree in tests). Paths are relative: "bus/pci/devices/0000:00:06.0/driver".
class Sysfs {
 public:
  virtual ~Sysfs() = default;
  /// Writes `value` to an attribute, as `echo -n value > path` would (one write(2)). The kernel's
  /// answer to that write (EINVAL, ENODEV, EBUSY, ...) is the error.
  [[nodiscard]] virtual Result<void> write(const std::string& path, const std::string& value) = 0;
  /// The last component of a symlink's target ("vfio-pci" for a device's driver link); NotFound
  /// when there is no such link.
  [[nodiscard]] virtual Result<std::string> linkName(const std::string& path) const = 0;
  virtual bool exists(const std::string& path) const = 0;
};

/// Sysfs over the file system under `root`.
class FileSysfs final : public Sysfs {
 public:
  explicit FileSysfs(std::string root = "/sys") : root_(std::move(root)) {}
  Result<void> write(const std::string& path, const std::string& value) override;
  Result<std::string> linkName(const std::string& path) const override;
  bool exists(const std::string& path) const override;

 private:
  std::string root_;
};

}  // namespace eni
