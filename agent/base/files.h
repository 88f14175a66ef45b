#pragma once

#include <string>
#include <string_view>

#include "agent/base/error.h"

namespace eni {

/// Reads a whole file. Errors name the file and say why (NotFound, Permission or Transient).
[[nodiscard]] Result<std::string> readFile(const std::string& path);

/// Standard base64 (RFC 4648, padding optional, whitespace ignored). Invalid on other input.
[[nodiscard]] Result<std::string> base64Decode(std::string_view text);

}  // namespace eni
