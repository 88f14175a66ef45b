#pragma once

#include <string>
#include <string_view>

namespace eni {

/// RFC 3986 percent-encoding: unreserved characters stay, every other byte becomes %XX. Right for
/// URL query values and for application/x-www-form-urlencoded bodies (AWS Query APIs).
std::string percentEncode(std::string_view text);

/// `text` for a terminal: control bytes (NUL, newline, ESC, DEL...) become \xNN, every other byte
/// stays. Nothing is cut, so a message with an embedded NUL is printed whole.
std::string escapeControlBytes(std::string_view text);

/// `text` with ASCII A-Z turned into a-z; every other byte stays (MAC addresses, tag keys,
/// "true"/"TRUE"). Not locale-dependent.
std::string lower(std::string_view text);

}  // namespace eni
