#pragma once

#include <string>

#include "agent/base/error.h"

namespace eni {

/// A libnl error code as a typed Error: no device or object is NotFound, no permission is
/// Permission, a refused value is Invalid, anything else Transient. `what` says what was tried.
Error netlinkError(const std::string& what, int err);

}  // namespace eni
