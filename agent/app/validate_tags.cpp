// `eni-agent validate-tags`: parse, validate and hash one annotation value, offline.
#include <cstdio>

#include "agent/app/commands.h"
#include "agent/tagger/tags.h"

int eni::validateTags(const Command& command) {
  TagNamespace ns{command.options.tagNamespace};
  auto tags = parseTagAnnotation(command.arguments.front(), ns, "<pod-namespace>");
  if (!tags) {
    std::fprintf(stderr, "invalid: %s\n", tags.error().message.c_str());
    return kExitFailure;
  }
  std::printf("tags: %s\nhash: %s\n", tagsToJson(*tags).c_str(), tagHash(*tags).c_str());
  return 0;
}
