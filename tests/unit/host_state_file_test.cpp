// state.json and the state-directory lock, on a real temporary directory.
#include <gtest/gtest.h>

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "agent/base/files.h"
#include "agent/state/file_state_store.h"

namespace eni {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "eni-host-state-XXXXXX";
    path = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::string cmd;
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") ::unlink((path + "/" + name).c_str());
      }
      closedir(d);
    }
    ::rmdir(path.c_str());
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") out.push_back(name);
      }
      closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string path;
};

NodeState sample() {
  NodeState s;
  s.instanceId = "i-1";
  s.enis["eni-1"].mac = "02:00:00:00:00:01";
  s.enis["eni-1"].tags = {{"Team", "Platform"}};
  s.enis["eni-1"].hash = "abc";
  s.attachments.push_back(
      {"host-1", "eni-2", "attach-2", 1, "eth1", 9001, AttachmentPhase::Attached, "Configured"});
  return s;
}

TEST(HostStateFile, NoFileIsAColdStart) {
  TempDir dir;
  FileStateStore store(dir.path);
  auto loaded = store.load();
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->has_value());
}

TEST(HostStateFile, SaveThenLoadRoundTripsAndLeavesNoTemporaryFile) {
  TempDir dir;
  FileStateStore store(dir.path);
  ASSERT_TRUE(store.save(sample()));
  NodeState second = sample();
  second.enis["eni-3"].mac = "02:00:00:00:00:03";
  ASSERT_TRUE(store.save(second));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"state.json"});
  auto loaded = FileStateStore(dir.path).load();
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_EQ(**loaded, second);
}

TEST(HostStateFile, ACorruptFileIsMovedAsideNotOverwritten) {
  TempDir dir;
  std::ofstream(dir.path + "/state.json") << "{\"version\": 1, \"enis\": ";
  FileStateStore store(dir.path);
  auto loaded = store.load();
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->has_value());
  ASSERT_FALSE(store.movedAside().empty());
  EXPECT_NE(store.movedAsideReason().find("malformed JSON"), std::string::npos);
  auto kept = readFile(store.movedAside());
  ASSERT_TRUE(kept);
  EXPECT_EQ(*kept, "{\"version\": 1, \"enis\": ");
  ASSERT_TRUE(store.save(sample()));
  EXPECT_EQ(*readFile(store.movedAside()), "{\"version\": 1, \"enis\": ");
  EXPECT_EQ(dir.entries().size(), 2u);
}

TEST(HostStateFile, AStateFromANewerAgentIsMovedAsideToo) {
  TempDir dir;
  std::ofstream(dir.path + "/state.json") << R"({"version": 99})";
  FileStateStore store(dir.path);
  auto loaded = store.load();
  ASSERT_TRUE(loaded);
  EXPECT_FALSE(loaded->has_value());
  EXPECT_NE(store.movedAsideReason().find("version 99"), std::string::npos);
}

TEST(HostStateFile, ASecondLockFailsWithAClearErrorAndTheFirstReleasesOnDestruction) {
  TempDir dir;
  {
    auto first = StateDirLock::acquire(dir.path);
    ASSERT_TRUE(first) << first.error().message;
    auto second = StateDirLock::acquire(dir.path);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, ErrorCode::Conflict);
    EXPECT_NE(second.error().message.find("locked by another eni-agent (pid " +
                                          std::to_string(::getpid()) + ")"),
              std::string::npos)
        << second.error().message;
  }
  EXPECT_TRUE(StateDirLock::acquire(dir.path));
}

TEST(HostStateFile, SaveCreatesAMissingDirectory) {
  TempDir dir;
  const std::string sub = dir.path + "/sub";
  FileStateStore store(sub);
  ASSERT_TRUE(store.save(sample()));
  EXPECT_TRUE(readFile(sub + "/state.json"));
  ::unlink((sub + "/state.json").c_str());
  ::rmdir(sub.c_str());
}

// As host mode's NodeStateStore: load() makes current(), update() writes only what changed, and
// writeAhead() answers at once whether the state as it is now is on disk.
TEST(HostStateFile, AsTheNodeStateStoreItWritesOnlyChangesAndAnswersWriteAheads) {
  TempDir dir;
  {
    FileStateStore store(dir.path);
    ASSERT_TRUE(store.save(sample()));
  }
  FileStateStore store(dir.path);
  EXPECT_FALSE(store.loaded());
  ASSERT_TRUE(store.load());
  EXPECT_TRUE(store.loaded());
  EXPECT_EQ(store.current(), sample());
  store.update([](NodeState&) {});
  EXPECT_EQ(store.saves(), 0) << "nothing changed, nothing written";
  store.update([](NodeState& s) { s.creating = {"host-1"}; });
  EXPECT_EQ(store.saves(), 1);
  bool stored = false;
  store.writeAhead([&](bool ok) { stored = ok; });
  EXPECT_TRUE(stored);
  EXPECT_EQ(store.saves(), 1) << "already on disk";
  auto reloaded = FileStateStore(dir.path).load();
  ASSERT_TRUE(reloaded && reloaded->has_value());
  EXPECT_EQ((*reloaded)->creating, std::vector<std::string>{"host-1"});
  EXPECT_EQ(store.problem(), "");
}

}  // namespace
}  // namespace eni
