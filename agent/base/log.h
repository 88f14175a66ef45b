#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace eni {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };
enum class LogFormat { Json, Text };

/// One structured field of a log line. Never put a secret, a credential or a token here.
struct LogField {
  std::string key;
  std::string value;
  LogField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  LogField(std::string k, const char* v) : key(std::move(k)), value(v) {}
  LogField(std::string k, std::string_view v) : key(std::move(k)), value(v) {}
  template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
  LogField(std::string k, N v) : key(std::move(k)), value(std::to_string(v)) {}
};

/// Process-wide structured logger: one line per decision, JSON by default.
/// Library code (netlink/, ec2/) logs at debug at most; the daemon logs where it decides.
/// Thread-safe.
namespace logging {

void configure(LogFormat format, LogLevel level);
/// Replaces the sink (stderr by default). Tests use it to capture lines.
void setSink(std::function<void(const std::string& line)> sink);
/// A sink that takes each record's parts instead of a formatted line (journald's structured
/// fields). While set, it replaces the line sink; nullptr goes back to lines.
using RecordSink = std::function<void(LogLevel level, std::string_view message,
                                      std::initializer_list<LogField> fields)>;
void setRecordSink(RecordSink sink);
bool enabled(LogLevel level);
void write(LogLevel level, std::string_view message, std::initializer_list<LogField> fields);

/// Parses "debug|info|warn|error" and "json|text"; false on anything else.
bool parseLevel(std::string_view text, LogLevel& out);
bool parseFormat(std::string_view text, LogFormat& out);

}  // namespace logging

inline void logDebug(std::string_view m, std::initializer_list<LogField> f = {}) {
  logging::write(LogLevel::Debug, m, f);
}
inline void logInfo(std::string_view m, std::initializer_list<LogField> f = {}) {
  logging::write(LogLevel::Info, m, f);
}
inline void logWarn(std::string_view m, std::initializer_list<LogField> f = {}) {
  logging::write(LogLevel::Warn, m, f);
}
inline void logError(std::string_view m, std::initializer_list<LogField> f = {}) {
  logging::write(LogLevel::Error, m, f);
}

}  // namespace eni
