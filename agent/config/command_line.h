#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/env.h"
#include "agent/base/error.h"
#include "agent/config/options.h"

namespace eni {

/// Parses argv (without argv[0]) into a Command. Flags win over ENI_AGENT_* variables, which win
/// over ENI_TAGGER_* variables (read for k8s-eni-tagger's flags only), which win over the defaults;
/// DESIGN.md's derived defaults ($NODE_NAME, $KUBECONFIG, $AWS_REGION, mode detection) are applied
/// last. `stdoutIsTty` picks the text log format when none is given. Errors are ErrorCode::Invalid
/// with a message that names the flag or variable and the value.
[[nodiscard]] Result<Command> parseCommandLine(const std::vector<std::string>& args,
                                               const EnvLookup& env, bool stdoutIsTty);

/// One line per k8s-eni-tagger flag in options.noEffectFlags: "flag --X of k8s-eni-tagger has no
/// effect here, because ...". Logged once at start.
std::vector<std::string> noEffectLines(const AgentOptions& options);

/// `eni-agent --help`: every sub-command and flag with its default and variable.
std::string helpText();
/// `eni-agent version`.
std::string versionText();

/// Parses "30m", "10s", "1h30m", "250ms" (Go's duration form, no sign). Invalid on anything else.
[[nodiscard]] Result<Duration> parseDuration(const std::string& text);

}  // namespace eni
