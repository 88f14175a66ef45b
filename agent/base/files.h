#pragma once

#include <string>
#include <string_view>

#include "agent/base/error.h"

namespace eni {

/// Reads a whole file. Errors name the file and say why (NotFound, Permission or Transient).
[[nodiscard]] Result<std::string> readFile(const std::string& path);

/// The error of a failed system call on `what`: Permission (EACCES, EPERM, EROFS), NotFound
/// (ENOENT) or Transient, with strerror's text.
Error systemError(const std::string& what, int err);

/// Writes `content` to `path` so that a reader sees the old file or the new one, never a part: a
/// temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
[[nodiscard]] Result<void> writeFileAtomically(const std::string& path, std::string_view content,
                                               unsigned mode = 0644);

/// Standard base64 (RFC 4648, padding optional, whitespace ignored). Invalid on other input.
[[nodiscard]] Result<std::string> base64Decode(std::string_view text);

}  // namespace eni
