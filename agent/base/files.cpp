#include "agent/base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace eni {
namespace {

Result<void> writeAll(int fd, std::string_view data, const std::string& path) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(systemError("cannot write " + path, errno));
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

std::string directoryOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Error systemError(const std::string& what, int err) {
  const ErrorCode code = err == EACCES || err == EPERM || err == EROFS ? ErrorCode::Permission
                         : err == ENOENT                               ? ErrorCode::NotFound
                                                                       : ErrorCode::Transient;
  return Error{code, what + ": " + std::strerror(err)};
}

Result<void> writeFileAtomically(const std::string& path, std::string_view content, unsigned mode) {
  const std::string dir = directoryOf(path);
  // Hidden, beside the file: the rename stays within one file system.
  std::string temp = dir + "/." + path.substr(path.rfind('/') + 1) + ".XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) return fail(systemError("cannot create a temporary file in " + dir, errno));
  auto cleanup = [&](Error e) {
    ::close(fd);
    ::unlink(temp.c_str());
    return fail(std::move(e));
  };
  if (::fchmod(fd, mode) != 0) return cleanup(systemError("cannot chmod " + temp, errno));
  if (auto ok = writeAll(fd, content, temp); !ok) return cleanup(ok.error());
  if (::fsync(fd) != 0) return cleanup(systemError("cannot fsync " + temp, errno));
  if (::close(fd) != 0) {
    ::unlink(temp.c_str());
    return fail(systemError("cannot close " + temp, errno));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return fail(systemError("cannot rename " + temp + " to " + path, err));
  }
  // The rename is durable only once the directory entry is.
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return {};
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const ErrorCode code = err == ENOENT   ? ErrorCode::NotFound
                           : err == EACCES ? ErrorCode::Permission
                                           : ErrorCode::Transient;
    return fail(code, "cannot read " + path + ": " + std::strerror(err));
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return fail(ErrorCode::Transient, "cannot read " + path + ": read error");
  return content.str();
}

Result<std::string> base64Decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned buffer = 0;
  int bits = 0;
  bool padding = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int v = value(c);
    if (v < 0 || padding) return fail(ErrorCode::Invalid, "invalid base64 data");
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  if (bits >= 6) return fail(ErrorCode::Invalid, "invalid base64 data: truncated");
  return out;
}

}  // namespace eni
