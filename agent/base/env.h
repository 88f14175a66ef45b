#pragma once

#include <functional>
#include <optional>
#include <string>

namespace eni {

/// Reads one environment variable; std::nullopt when unset. A seam so that tests need no setenv.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// The process environment.
EnvLookup processEnv();

}  // namespace eni
