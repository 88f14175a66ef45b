// The entry point: parse the command line, configure logging, dispatch to the command's
// composition root in agent/app. No logic lives here.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "agent/app/commands.h"
#include "agent/base/env.h"
#include "agent/base/heap_trimmer.h"
#include "agent/base/log.h"
#include "agent/config/command_line.h"

int main(int argc, char** argv) {
  eni::useOneMallocArena();
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto command = eni::parseCommandLine(args, eni::processEnv(), isatty(STDERR_FILENO) == 1);
  if (!command) {
    std::fprintf(stderr, "eni-agent: %s\n", command.error().message.c_str());
    return eni::kExitUsage;
  }
  const eni::AgentOptions& options = command->options;
  eni::logging::configure(options.logFormat, options.logLevel);

  switch (command->kind) {
    case eni::CommandKind::Help:
      std::fputs(eni::helpText().c_str(), stdout);
      return 0;
    case eni::CommandKind::Version:
      std::fputs(eni::versionText().c_str(), stdout);
      return 0;
    case eni::CommandKind::ValidateTags:
      return eni::validateTags(*command);
    case eni::CommandKind::Status:
      return eni::runStatus(*command);
    case eni::CommandKind::Run:
      break;
  }
  for (const auto& line : eni::noEffectLines(options)) eni::logInfo(line);
  if (options.mode == eni::RunMode::Host) return eni::runHost(options);
  return eni::runKubernetes(options);
}
