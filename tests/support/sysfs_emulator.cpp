#include "tests/support/sysfs_emulator.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/base/json.h"
#include "tests/support/eventually.h"

namespace eni::testing {
namespace {

namespace fs = std::filesystem;

std::string freshDir() {
  static int counter = 0;
  return (fs::temp_directory_path() /
          ("eni-sysfs-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)))
      .string();
}

std::vector<std::string> commandLine(const SysfsEmulatorOptions& options, const std::string& dir) {
  std::vector<std::string> argv = {
      "python3",      std::string(ENI_SOURCE_DIR) + "/tests/env/sysfs_emulator.py",
      "--root",       dir + "/sys",
      "--control",    dir + "/control",
      "--ready-file", dir + "/ready"};
  for (const auto& driver : options.drivers) {
    argv.push_back("--driver");
    argv.push_back(driver);
  }
  for (const auto& d : options.devices) {
    argv.push_back("--device");
    argv.push_back(d.pciAddress + "=" + d.interfaceName + (d.mac.empty() ? "" : "," + d.mac) + "@" +
                   d.driver);
  }
  if (!options.netnsPath.empty()) {
    argv.push_back("--netns-path");
    argv.push_back(options.netnsPath);
  }
  return argv;
}

}  // namespace

Result<std::unique_ptr<SysfsEmulator>> SysfsEmulator::start(const SysfsEmulatorOptions& options,
                                                            Duration limit) {
  const std::string dir = freshDir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::Internal, "cannot make " + dir + ": " + ec.message());
  auto process = std::make_unique<BackgroundProcess>(commandLine(options, dir));
  std::unique_ptr<SysfsEmulator> emulator(new SysfsEmulator(dir, std::move(process)));
  BackgroundProcess& running = *emulator->process_;
  const bool ready = pollUntil([&] { return fs::exists(dir + "/ready") || !running.running(); },
                               limit, Duration(20));
  if (!ready || !fs::exists(dir + "/ready")) {
    return fail(ErrorCode::Internal,
                "the sysfs emulator did not come up; its output:\n" + emulator->output());
  }
  return emulator;
}

SysfsEmulator::SysfsEmulator(std::string dir, std::unique_ptr<BackgroundProcess> process)
    : dir_(std::move(dir)), root_(dir_ + "/sys"), process_(std::move(process)) {}

SysfsEmulator::~SysfsEmulator() {
  process_->terminate();
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

std::vector<SysfsOperation> SysfsEmulator::operations() const {
  std::vector<SysfsOperation> out;
  std::istringstream lines(output());
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with('{')) continue;  // a Python traceback, if it died
    auto json = parseJson(line);
    if (!json) continue;  // a line still being written
    SysfsOperation op{stringField(*json, "op"),     stringField(*json, "pci"),
                      stringField(*json, "driver"), stringField(*json, "ifname"),
                      stringField(*json, "mac"),    stringField(*json, "reason")};
    if (op.op != "ready") out.push_back(std::move(op));
  }
  return out;
}

bool SysfsEmulator::waitForOperations(std::size_t count, Duration limit) const {
  return pollUntil([&] { return operations().size() >= count; }, limit, Duration(20));
}

Result<void> SysfsEmulator::unloadDriver(const std::string& driver, Duration limit) {
  return control("unload", driver, limit);
}

Result<void> SysfsEmulator::loadDriver(const std::string& driver, Duration limit) {
  return control("load", driver, limit);
}

Result<void> SysfsEmulator::control(const std::string& verb, const std::string& driver,
                                    Duration limit) {
  const std::size_t before = operations().size();
  std::ofstream(dir_ + "/control") << verb << " " << driver << "\n";
  SysfsOperation answer;
  const bool answered = pollUntil(
      [&] {
        const auto ops = operations();
        for (std::size_t i = before; i < ops.size(); ++i) {
          if (ops[i].op == "error" || (ops[i].op == verb && ops[i].driver == driver)) {
            answer = ops[i];
            return true;
          }
        }
        return false;
      },
      limit, Duration(20));
  if (!answered)
    return fail(ErrorCode::Internal,
                "the sysfs emulator did not " + verb + " " + driver + "; its output:\n" + output());
  if (answer.op == "error")
    return fail(ErrorCode::Internal,
                "the sysfs emulator refused to " + verb + " " + driver + ": " + answer.reason);
  return {};
}

}  // namespace eni::testing
