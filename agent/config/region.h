#pragma once

#include <string>
#include <string_view>

#include "agent/base/error.h"

namespace eni {

/// Whether `text` has the form of an AWS region name: two lower-case letters, one or more
/// lower-case words, a number, joined by '-' (us-east-1, us-gov-west-1, cn-north-1,
/// ap-southeast-4, il-central-1, us-isob-east-1). Says nothing about whether it exists.
bool isRegionName(std::string_view text);

/// Ok for a region name; else Invalid: "<source> gave \"<text>\", which is not an AWS region
/// name such as us-east-1". The text is quoted safely: cut to 40 bytes, control and non-ASCII
/// bytes shown as '?', so an HTML page or binary garbage stays one short log line.
[[nodiscard]] Result<void> checkRegionName(std::string_view text, const std::string& source);

}  // namespace eni
