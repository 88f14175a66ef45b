// `eni-agent validate-tags`: parse, validate and hash one annotation value, offline.
#include <cstdio>
#include <string>

#include "agent/app/commands.h"
#include "agent/base/strings.h"
#include "agent/eni/tags.h"

namespace {

// fwrite, not printf("%s"): every byte is written, whatever the text holds.
void put(std::FILE* to, const std::string& text) { std::fwrite(text.data(), 1, text.size(), to); }

}  // namespace

int eni::validateTags(const Command& command) {
  TagNamespace ns{command.options.tagNamespace};
  auto tags = parseTagAnnotation(command.arguments.front(), ns, "<pod-namespace>");
  if (!tags) {
    // The message quotes the annotation's own bytes, which may hold a NUL (JSON's \u0000).
    put(stderr, "invalid: " + escapeControlBytes(tags.error().message) + "\n");
    return kExitFailure;
  }
  if (tags->empty()) {
    // The agent applies an empty set as no tags at all: nothing to tag, no hash tag written.
    put(stdout, std::string("tags: none (the agent writes no tags and no ") + kHashTagKey +
                    " tag for this value)\n");
    return 0;
  }
  put(stdout,
      "tags: " + escapeControlBytes(tagsToJson(*tags)) + "\nhash: " + tagHash(*tags) + "\n");
  return 0;
}
