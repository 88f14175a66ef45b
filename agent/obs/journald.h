#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/log.h"

namespace eni {

/// True when stderr is connected to the journal: $JOURNAL_STREAM ("<dev>:<inode>") names
/// stderr's device and inode, as systemd sets it for a service's output.
bool stderrIsJournal();

/// A log field's key as a journal field name: upper case, characters outside [A-Z0-9_] become
/// '_', a leading digit or '_' gets "F_" in front, at most 64 characters. Keys that would clash
/// with journal fields the agent sets itself (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER) or with
/// trusted/protected ones get "F_" too.
std::string journalFieldName(std::string_view key);

/// The journal entry for one log record: MESSAGE=, PRIORITY= (syslog: debug 7, info 6, warn 4,
/// error 3), SYSLOG_IDENTIFIER=eni-agent, then one NAME=value per field. The fields are the log
/// line's own, so nothing reaches the journal that the line would not carry. Pure.
std::vector<std::string> journalFields(LogLevel level, std::string_view message,
                                       std::initializer_list<LogField> fields);

/// Routes every log record to sd_journal_sendv with journalFields(). Call once, early.
void useJournald();

}  // namespace eni
