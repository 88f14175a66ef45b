#include "agent/state/file_state_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "agent/base/files.h"
#include "agent/base/log.h"

namespace eni {
namespace {

Result<void> ensureDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return {};
  return fail(systemError("cannot create the state directory " + dir, errno));
}

}  // namespace

FileStateStore::FileStateStore(std::string dir)
    : dir_(std::move(dir)), path_(dir_ + "/state.json") {}

Result<std::optional<NodeState>> FileStateStore::load() {
  movedAside_.clear();
  movedAsideReason_.clear();
  state_ = NodeState{};
  written_.clear();
  auto text = readFile(path_);
  if (!text) {
    if (text.error().code != ErrorCode::NotFound) return fail(text.error());
    loaded_ = true;
    return std::optional<NodeState>{};
  }
  auto state = decodeNodeState(*text);
  if (state) {
    loaded_ = true;
    state_ = *state;
    if (auto encoded = encodeNodeState(state_); encoded) written_ = *encoded;
    return std::optional<NodeState>(std::move(*state));
  }
  // Keep the bad file for a human to look at; the agent starts cold and rebuilds its state.
  std::string aside = path_ + ".corrupt-" + std::to_string(std::time(nullptr));
  for (int i = 1; i < 100 && ::access(aside.c_str(), F_OK) == 0; ++i) {
    aside = path_ + ".corrupt-" + std::to_string(std::time(nullptr)) + "-" + std::to_string(i);
  }
  if (::rename(path_.c_str(), aside.c_str()) != 0) {
    return fail(ErrorCode::Invalid, path_ + " is unreadable (" + state.error().message +
                                        ") and cannot be moved aside: " + std::strerror(errno) +
                                        "; move or delete it by hand");
  }
  movedAside_ = aside;
  movedAsideReason_ = state.error().message;
  loaded_ = true;
  return std::optional<NodeState>{};
}

void FileStateStore::update(const std::function<void(NodeState&)>& change) {
  change(state_);
  writeCurrent();
}

void FileStateStore::writeAhead(std::function<void(bool stored)> done) { done(writeCurrent()); }

bool FileStateStore::writeCurrent() {
  auto text = encodeNodeState(state_);
  if (!text) {
    problem_ = "StateTooLarge: " + text.error().message;
    logWarn("cannot encode the state, not saving it", {{"error", text.error().message}});
    return false;
  }
  if (*text == written_) return true;
  if (auto ok = save(state_); !ok) {
    problem_ = "StateFileUnwritable: " + ok.error().describe();
    logWarn("cannot save the state file, will retry with the next change",
            {{"error", ok.error().describe()}});
    return false;
  }
  written_ = *text;
  problem_.clear();
  return true;
}

Result<void> FileStateStore::save(const NodeState& state) {
  auto text = encodeNodeState(state);
  if (!text) return fail(text.error());
  if (auto ok = ensureDir(dir_); !ok) return ok;
  if (auto ok = writeFileAtomically(path_, *text + "\n"); !ok) return ok;
  ++saves_;
  return {};
}

Result<StateDirLock> StateDirLock::acquire(const std::string& dir) {
  if (auto ok = ensureDir(dir); !ok) return fail(ok.error());
  const std::string path = dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return fail(systemError("cannot open the lock file " + path, errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return fail(ErrorCode::Conflict,
                  path + " is locked by another eni-agent" +
                      (pid.empty() ? "" : " (pid " + pid + ")") +
                      "; only one copy may run per state directory: stop the other one "
                      "(systemctl stop eni-agent) or give this one another --state-dir");
    }
    return fail(systemError("cannot lock " + path, err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) (void)::pwrite(fd, pid.data(), pid.size(), 0);
  return StateDirLock(fd);
}

StateDirLock::StateDirLock(StateDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

StateDirLock& StateDirLock::operator=(StateDirLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace eni
