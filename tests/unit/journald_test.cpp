// The journald sink's mapping of a log record to journal fields.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/obs/journald.h"

namespace eni {
namespace {

TEST(Journald, FieldsCarryMessagePriorityAndEveryLogFieldInUpperCase) {
  auto fields = journalFields(LogLevel::Warn, "cannot detach ENI, will retry",
                              {{"eni", "eni-1"}, {"device_index", 3}, {"error", "boom"}});
  EXPECT_EQ(fields, (std::vector<std::string>{"MESSAGE=cannot detach ENI, will retry", "PRIORITY=4",
                                              "SYSLOG_IDENTIFIER=eni-agent", "ENI=eni-1",
                                              "DEVICE_INDEX=3", "ERROR=boom"}));
}

TEST(Journald, PrioritiesAreSyslogs) {
  EXPECT_EQ(journalFields(LogLevel::Debug, "m", {})[1], "PRIORITY=7");
  EXPECT_EQ(journalFields(LogLevel::Info, "m", {})[1], "PRIORITY=6");
  EXPECT_EQ(journalFields(LogLevel::Error, "m", {})[1], "PRIORITY=3");
}

TEST(Journald, FieldNamesAreValidAndNeverOverrideTheAgentsOwn) {
  EXPECT_EQ(journalFieldName("state_dir"), "STATE_DIR");
  EXPECT_EQ(journalFieldName("first-eni.id"), "FIRST_ENI_ID");
  EXPECT_EQ(journalFieldName("message"), "F_MESSAGE");
  EXPECT_EQ(journalFieldName("priority"), "F_PRIORITY");
  EXPECT_EQ(journalFieldName("_pid"), "F__PID");  // trusted fields start with '_'
  EXPECT_EQ(journalFieldName("1st"), "F_1ST");
  EXPECT_EQ(journalFieldName(""), "F_");
  EXPECT_EQ(journalFieldName(std::string(100, 'a')).size(), 64u);
}

TEST(Journald, TheRecordSinkReceivesRecordsInsteadOfLines) {
  std::vector<std::string> lines;
  std::vector<std::string> records;
  logging::setSink([&](const std::string& l) { lines.push_back(l); });
  logging::setRecordSink(
      [&](LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
        for (const auto& f : journalFields(level, message, fields)) records.push_back(f);
      });
  logInfo("hello", {{"eni", "eni-9"}});
  logging::setRecordSink(nullptr);
  logInfo("back to lines");
  logging::setSink(nullptr);
  EXPECT_EQ(records, (std::vector<std::string>{"MESSAGE=hello", "PRIORITY=6",
                                               "SYSLOG_IDENTIFIER=eni-agent", "ENI=eni-9"}));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("back to lines"), std::string::npos);
}

TEST(Journald, OnlyAStderrThatIsTheJournalCounts) {
  unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderrIsJournal());
  setenv("JOURNAL_STREAM", "1:2", 1);
  EXPECT_FALSE(stderrIsJournal());
  struct stat st {};
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_TRUE(stderrIsJournal());
  unsetenv("JOURNAL_STREAM");
}

}  // namespace
}  // namespace eni
