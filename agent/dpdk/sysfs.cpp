#include "agent/dpdk/sysfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>

#include "agent/base/files.h"

namespace eni {

Result<void> FileSysfs::write(const std::string& path, const std::string& value) {
  const std::string full = root_ + "/" + path;
  // O_WRONLY without O_CREAT or O_TRUNC: sysfs attributes exist or the write is refused.
  const int fd = ::open(full.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(systemError("cannot open " + full, errno));
  const ssize_t n = ::write(fd, value.data(), value.size());
  const int err = errno;
  ::close(fd);
  if (n < 0) return fail(systemError("cannot write \"" + value + "\" to " + full, err));
  if (static_cast<std::size_t>(n) != value.size())
    return fail(ErrorCode::Transient, "short write of \"" + value + "\" to " + full);
  return {};
}

Result<std::string> FileSysfs::linkName(const std::string& path) const {
  const std::string full = root_ + "/" + path;
  char target[PATH_MAX];
  const ssize_t n = ::readlink(full.c_str(), target, sizeof target - 1);
  if (n < 0) return fail(systemError("cannot read the link " + full, errno));
  const std::string text(target, static_cast<std::size_t>(n));
  return text.substr(text.rfind('/') + 1);
}

bool FileSysfs::exists(const std::string& path) const {
  return ::access((root_ + "/" + path).c_str(), F_OK) == 0;
}

}  // namespace eni
