#include "agent/base/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "agent/base/json.h"

namespace eni::logging {
namespace {

struct State {
  std::mutex mutex;
  LogFormat format = LogFormat::Json;
  LogLevel level = LogLevel::Info;
  std::function<void(const std::string&)> sink;
  RecordSink recordSink;
};

State& state() {
  static State s;
  return s;
}

std::string_view levelName(LogLevel level) {
  switch (level) {
    case LogLevel::Debug:
      return "debug";
    case LogLevel::Info:
      return "info";
    case LogLevel::Warn:
      return "warn";
    case LogLevel::Error:
      return "error";
  }
  return "info";
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

void configure(LogFormat format, LogLevel level) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().format = format;
  state().level = level;
}

void setSink(std::function<void(const std::string& line)> sink) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().sink = std::move(sink);
}

void setRecordSink(RecordSink sink) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().recordSink = std::move(sink);
}

bool enabled(LogLevel level) {
  std::lock_guard<std::mutex> lock(state().mutex);
  return level >= state().level;
}

void write(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  std::lock_guard<std::mutex> lock(state().mutex);
  if (level < state().level) return;
  if (state().recordSink) {
    state().recordSink(level, message, fields);
    return;
  }
  std::string line;
  if (state().format == LogFormat::Json) {
    line = "{\"ts\":\"" + timestamp() + "\",\"level\":\"" + std::string(levelName(level)) +
           "\",\"msg\":" + jsonQuote(message);
    for (const auto& f : fields) line += "," + jsonQuote(f.key) + ":" + jsonQuote(f.value);
    line += "}";
  } else {
    line = timestamp() + " " + std::string(levelName(level)) + " " + std::string(message);
    for (const auto& f : fields) line += " " + f.key + "=" + f.value;
  }
  if (state().sink) {
    state().sink(line);
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

bool parseLevel(std::string_view text, LogLevel& out) {
  if (text == "debug")
    out = LogLevel::Debug;
  else if (text == "info")
    out = LogLevel::Info;
  else if (text == "warn")
    out = LogLevel::Warn;
  else if (text == "error")
    out = LogLevel::Error;
  else
    return false;
  return true;
}

bool parseFormat(std::string_view text, LogFormat& out) {
  if (text == "json")
    out = LogFormat::Json;
  else if (text == "text")
    out = LogFormat::Text;
  else
    return false;
  return true;
}

}  // namespace eni::logging
