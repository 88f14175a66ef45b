#include "agent/obs/journald.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

namespace eni {

bool stderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

std::string journalFieldName(std::string_view key) {
  static const std::set<std::string> kOwn{
      "MESSAGE",   "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE_ID", "CODE_FILE", "CODE_LINE",
      "CODE_FUNC", "ERRNO",    "SYSLOG_FACILITY",   "SYSLOG_PID"};
  std::string out;
  for (unsigned char c : key) {
    if (c >= 'a' && c <= 'z') {
      out += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += static_cast<char>(c);
    } else {
      out += '_';
    }
  }
  if (out.empty() || out[0] == '_' || (out[0] >= '0' && out[0] <= '9') || kOwn.count(out) != 0) {
    out = "F_" + out;
  }
  if (out.size() > 64) out.resize(64);
  return out;
}

std::vector<std::string> journalFields(LogLevel level, std::string_view message,
                                       std::initializer_list<LogField> fields) {
  int priority = 6;
  switch (level) {
    case LogLevel::Debug:
      priority = 7;
      break;
    case LogLevel::Info:
      priority = 6;
      break;
    case LogLevel::Warn:
      priority = 4;
      break;
    case LogLevel::Error:
      priority = 3;
      break;
  }
  std::vector<std::string> out;
  out.reserve(fields.size() + 3);
  out.push_back("MESSAGE=" + std::string(message));
  out.push_back("PRIORITY=" + std::to_string(priority));
  out.push_back("SYSLOG_IDENTIFIER=eni-agent");
  for (const auto& f : fields) out.push_back(journalFieldName(f.key) + "=" + f.value);
  return out;
}

void useJournald() {
  logging::setRecordSink(
      [](LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
        const std::vector<std::string> entry = journalFields(level, message, fields);
        std::vector<iovec> iov;
        iov.reserve(entry.size());
        for (const auto& e : entry) {
          iov.push_back(iovec{const_cast<char*>(e.data()), e.size()});
        }
        sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
      });
}

}  // namespace eni
