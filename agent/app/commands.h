#pragma once

#include "agent/config/options.h"

// One composition root per command of the command line. Each builds the real adapters, wires
// them to the core and returns the process exit code. main.cpp only parses and dispatches.
namespace eni {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

/// `eni-agent run` in Kubernetes mode: tagger, ENI manager and links, coordinated through the
/// node's own annotation.
int runKubernetes(const AgentOptions& options);

/// `eni-agent run` in host mode: host.json, state.json and systemd.
int runHost(const AgentOptions& options);

/// `eni-agent status [--output table|json]`.
int runStatus(const Command& command);

/// `eni-agent validate-tags '<annotation>'`.
int validateTags(const Command& command);

}  // namespace eni
