// The composition root of `eni-agent status`: it reads this node's recorded state (the Node's
// eni-agent.io/state annotation in Kubernetes mode, <state-dir>/state.json in host mode), dumps
// the live links (in --link-netns when given) and prints the merge as a table or JSON.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "agent/app/commands.h"
#include "agent/app/kube_setup.h"
#include "agent/base/event_loop.h"
#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/status/node_status.h"
#include "netlink/link_dump.h"

namespace {

// A bound on a failure, not a timing assumption: a reachable API server answers in milliseconds.
constexpr eni::Duration kApiLimit{15000};

eni::Result<eni::NodeState> readNodeAnnotation(const eni::AgentOptions& options,
                                               eni::NodeStatus& status) {
  if (options.nodeName.empty()) {
    return eni::fail(eni::ErrorCode::Invalid,
                     "no node name: set --node-name or NODE_NAME (or --mode=host on a host "
                     "without Kubernetes)");
  }
  auto config = eni::kubeConfigFor(options);
  if (!config) return eni::fail(config.error());
  status.node = options.nodeName;
  status.source =
      "the " + std::string(eni::kNodeStateAnnotation) + " annotation of node " + options.nodeName;

  eni::EventLoop loop;
  eni::HttpClient http(loop);
  eni::CurlKubeClient kube(http, *config);
  bool done = false;
  eni::Result<Json::Value> node = eni::fail(
      eni::ErrorCode::Transient, "the API server at " + config->server + " did not answer within " +
                                     std::to_string(kApiLimit.count() / 1000) + " s");
  kube.get({eni::ResourceKind::nodes(), "", options.nodeName, ""}, [&](eni::Result<Json::Value> r) {
    node = std::move(r);
    done = true;
  });
  loop.runUntil([&] { return done; }, kApiLimit);
  if (!node) {
    if (node.error().code == eni::ErrorCode::NotFound) {
      return eni::fail(eni::ErrorCode::NotFound,
                       "node " + options.nodeName + " does not exist in the cluster at " +
                           config->server + ": check --node-name or NODE_NAME");
    }
    return eni::fail(eni::ErrorCode::Transient,
                     "cannot get node " + options.nodeName + ": " + node.error().message);
  }
  return eni::nodeStateOfNode(*node);
}

eni::Result<eni::NodeState> readStateFile(const eni::AgentOptions& options,
                                          eni::NodeStatus& status) {
  const std::string path = options.stateDir + "/state.json";
  status.source = path;
  auto text = eni::readFile(path);
  if (!text) {
    if (text.error().code == eni::ErrorCode::NotFound) {
      return eni::fail(eni::ErrorCode::NotFound,
                       "no state file at " + path +
                           ": the agent has not finished a first pass on this host yet (is "
                           "eni-agent.service running?), or --state-dir points elsewhere");
    }
    return eni::fail(text.error());
  }
  auto state = eni::decodeNodeState(*text);
  if (!state) return eni::fail(eni::ErrorCode::Invalid, path + ": " + state.error().message);
  return state;
}

}  // namespace

int eni::runStatus(const Command& command) {
  const AgentOptions& options = command.options;
  NodeStatus status;
  const bool host = options.mode == RunMode::Host;
  status.mode = host ? "host" : "kubernetes";
  auto state = host ? readStateFile(options, status) : readNodeAnnotation(options, status);
  if (!state) {
    std::fprintf(stderr, "eni-agent status: %s\n", state.error().message.c_str());
    return kExitFailure;
  }

  std::optional<std::vector<LinkInfo>> links;
  auto dumped = dumpLinks(options.linkNetns);
  std::string linksError;
  if (dumped) {
    links = std::move(*dumped);
  } else {
    linksError = dumped.error().message;
  }
  NodeStatus merged = buildNodeStatus(*state, links);
  merged.mode = status.mode;
  merged.node = status.node;
  merged.source = status.source;
  merged.linkNetns = options.linkNetns;
  merged.linksError = linksError;

  const std::string out = command.statusOutput == "json" ? toJson(statusJson(merged)) + "\n"
                                                         : renderStatusTable(merged);
  std::fputs(out.c_str(), stdout);
  return 0;
}
