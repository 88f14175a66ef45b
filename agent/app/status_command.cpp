// `eni-agent status`: this node's ENIs, their tags, pods and links, for a person.
#include <cstdio>

#include "agent/app/commands.h"

int eni::runStatus(const Command& /*command*/) {
  std::fprintf(stderr, "eni-agent: status is not in this build yet\n");
  return kExitFailure;
}
