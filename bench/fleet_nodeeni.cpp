// bench/fleet --virtual-nodes: N simulated nodes doing what an agent does toward the API server
// for one NodeENI, through the agent's own code (tests/support VirtualNode:
// NodeEniAttachmentWriter, NodeEniStatusWriter, planBookkeeping, checkRemaining). What the real
// agents received while only the simulated nodes wrote is read from each real agent's /metrics
// (eni_agent_kube_{watch,list}_bytes_total, eni_agent_kube_watch_events_total) before and after
// their rollout. K watchers opened the way an agent watches NodeENIs (CurlKubeClient, agent
// credentials, no selector) count the same window again as a cross-check. Prints one JSON object.
// Never fails on time; every wait is bounded.
//
//   eni_fleet_nodeeni --admin-kubeconfig A --agent-kubeconfig B --virtual-nodes N
//                     --design new|old [--watchers K] [--nodeeni NAME] [--label KEY=VALUE]
//                     [--real-nodes a,b] [--real-metrics host:port,host:port]
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/event_loop.h"
#include "agent/base/json.h"
#include "agent/http/http_client.h"
#include "agent/kube/bounded_writes.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/kube/kube_config.h"
#include "agent/kube/nodeeni_attachment_writer.h"
#include "tests/support/virtual_node.h"

namespace eni {
namespace {

struct Args {
  std::string adminKubeconfig, agentKubeconfig, design = "new", nodeEni = "fleet-bench";
  std::string labelKey = "fleet-bench", labelValue = "yes", prefix = "vnode-";
  std::string subnet = "subnet-0fleetbench0000";
  std::vector<std::string> realNodes;    // real agents' nodes the NodeENI also selects
  std::vector<std::string> realMetrics;  // real agents' metrics addresses (host:port)
  int nodes = 100, watchers = 3;
  int limitSeconds = 600;  // the rollout's bound: what is not recorded by then is reported
};

struct Watcher {
  WatchId id = 0;
  std::uint64_t events = 0, bytes = 0;
};

// One real agent's eni_agent_kube_* counters, summed over resources; bytes also by resource.
struct AgentTraffic {
  std::uint64_t bytes = 0, events = 0;
  std::map<std::string, std::uint64_t> bytesByResource;
};

// Reads the Prometheus text of /metrics: `name{resource="pods"} 1234` lines.
AgentTraffic parseTraffic(const std::string& text) {
  AgentTraffic t;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    const bool bytes = line.rfind("eni_agent_kube_watch_bytes_total{", 0) == 0 ||
                       line.rfind("eni_agent_kube_list_bytes_total{", 0) == 0;
    const bool events = line.rfind("eni_agent_kube_watch_events_total{", 0) == 0;
    const auto quote = line.find("resource=\"");
    const auto close = line.find("} ");
    if ((!bytes && !events) || quote == std::string::npos || close == std::string::npos) continue;
    const auto value = static_cast<std::uint64_t>(std::stod(line.substr(close + 2)));
    const std::string resource = line.substr(quote + 10, line.find('"', quote + 10) - quote - 10);
    if (events) t.events += value;
    if (bytes) {
      t.bytes += value;
      t.bytesByResource[resource] += value;
    }
  }
  return t;
}

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

class Bench {
 public:
  explicit Bench(const Args& a)
      : a_(a),
        admin_(http_, *loadKubeconfig(a.adminKubeconfig)),
        agent_(http_, *loadKubeconfig(a.agentKubeconfig)),
        bounded_(agent_, 64),
        adminBounded_(admin_, 64) {}

  Json::Value run();

 private:
  template <class T>
  Result<T> await(const std::function<void(Callback<T>)>& start, int limitMs = 60000) {
    std::optional<Result<T>> out;
    start([&](Result<T> r) { out = std::move(r); });
    loop_.runUntil([&] { return out.has_value(); }, Duration(limitMs));
    if (!out) return fail(ErrorCode::Transient, "bench: timed out");
    return std::move(*out);
  }
  // Runs `each(i, done)` for every node, all in flight at once (the bounded client queues), until
  // all are done or `limitMs` passes. Answers how many finished.
  int forAll(const std::function<void(int, std::function<void()>)>& each, int limitMs) {
    int finished = 0;
    for (int i = 0; i < a_.nodes; ++i) each(i, [&finished] { ++finished; });
    loop_.runUntil([&] { return finished == a_.nodes; }, Duration(limitMs));
    return finished;
  }
  std::string nodeName(int i) const { return a_.prefix + std::to_string(i); }
  void createNodes();
  void deleteNodes();
  Result<NodeEni> getNodeEni();
  Result<NodeEni> createNodeEni();
  void startWatchers(const std::string& fromVersion);
  std::uint64_t maxObjectBytes();
  double waitGone(int limitMs);
  double waitRealAttached(Clock::time_point t0, int limitMs);
  std::vector<std::optional<AgentTraffic>> scrapeAgents();
  void reportForeign(const std::vector<std::optional<AgentTraffic>>& before,
                     std::uint64_t watcherBytes, Json::Value& out);
  std::uint64_t rollout(const NodeEni& start, Json::Value& out);
  void deletion(std::uint64_t writes, Json::Value& out);

  Args a_;
  EventLoop loop_;
  HttpClient http_{loop_};
  CurlKubeClient admin_;
  CurlKubeClient agent_;
  BoundedWrites bounded_;
  BoundedWrites adminBounded_;
  SystemClock clock_;
  std::vector<std::string> nodeUids_;
  std::vector<std::unique_ptr<testing::VirtualNode>> nodes_;
  std::vector<Watcher> watchers_;
};

void Bench::createNodes() {
  nodeUids_.assign(a_.nodes, "");
  forAll(
      [this](int i, std::function<void()> done) {
        Json::Value node;
        node["metadata"]["name"] = nodeName(i);
        node["metadata"]["labels"][a_.labelKey] = a_.labelValue;
        adminBounded_.create(ObjectRef{ResourceKind::nodes(), "", "", ""}, node,
                             [this, i, done](Result<Json::Value> r) {
                               if (r)
                                 nodeUids_[i] = stringField(objectField(*r, "metadata"), "uid");
                               done();
                             });
      },
      600000);
}

void Bench::deleteNodes() {
  forAll(
      [this](int i, std::function<void()> done) {
        adminBounded_.remove(ObjectRef{ResourceKind::nodes(), "", nodeName(i), ""},
                             [done](Result<Json::Value>) { done(); });
      },
      600000);
}

Result<NodeEni> Bench::getNodeEni() {
  auto r = await<Json::Value>([this](auto done) {
    admin_.get(ObjectRef{ResourceKind::nodeEnis(), "", a_.nodeEni, ""}, done);
  });
  if (!r) return fail(r.error());
  return decodeNodeEni(*r);
}

void Bench::startWatchers(const std::string& fromVersion) {
  watchers_.assign(a_.watchers, Watcher{});
  for (auto& w : watchers_) {
    ListOptions o;  // as the agent's NodeENI reflector: every NodeENI, whole
    o.resourceVersion = fromVersion;
    w.id = agent_.watch(
        ResourceKind::nodeEnis(), "", o,
        [&w](WatchEvent e) {
          if (e.type == WatchEventType::Opened || e.type == WatchEventType::Bookmark) return;
          ++w.events;
          w.bytes += toJson(e.object).size();
        },
        [](Result<void>) {});
  }
}

std::uint64_t Bench::maxObjectBytes() {
  std::uint64_t most = 0;
  auto n = await<Json::Value>([this](auto done) {
    admin_.get(ObjectRef{ResourceKind::nodeEnis(), "", a_.nodeEni, ""}, done);
  });
  if (n) most = toJson(*n).size();
  if (a_.design == "old") return most;
  // Every node's object has the same shape; read a few.
  for (int i = 0; i < std::min(a_.nodes, 5); ++i) {
    auto o = await<Json::Value>([&](auto done) {
      admin_.get(ObjectRef{ResourceKind::nodeEniAttachments(), "",
                           nodeEniAttachmentName(a_.nodeEni, nodeName(i)), ""},
                 done);
    });
    if (o) most = std::max<std::uint64_t>(most, toJson(*o).size());
  }
  return most;
}

// The real agents' objects all Attached: their ENIs are attached in EC2 and recorded.
double Bench::waitRealAttached(Clock::time_point t0, int limitMs) {
  while (since(t0) * 1000 < limitMs) {
    std::size_t attached = 0;
    for (const auto& node : a_.realNodes) {
      auto o = await<Json::Value>([&](auto done) {
        admin_.get(ObjectRef{ResourceKind::nodeEniAttachments(), "",
                             nodeEniAttachmentName(a_.nodeEni, node), ""},
                   done);
      });
      auto decoded = o ? decodeNodeEniAttachment(*o) : fail(o.error());
      if (decoded && decoded->phase() == "Attached") ++attached;
    }
    if (attached == a_.realNodes.size()) return since(t0);
    loop_.runUntil([] { return false; }, Duration(200));
  }
  return -1;
}

double Bench::waitGone(int limitMs) {
  const auto t0 = Clock::now();
  while (since(t0) * 1000 < limitMs) {
    auto n = getNodeEni();
    if (!n && n.error().code == ErrorCode::NotFound) return since(t0);
    loop_.runUntil([] { return false; }, Duration(200));
  }
  return -1;
}

NodeEniAttachment entryOf(int i) {
  NodeEniAttachment e;
  e.instanceId = "i-0" + std::to_string(100000000 + i);
  e.eniId = "eni-0" + std::to_string(100000000 + i);
  e.attachmentId = "eni-attach-0" + std::to_string(100000000 + i);
  e.subnetId = "subnet-0fleetbench0000";
  e.deviceIndex = 1;
  e.mtu = 9001;
  e.status = "attached";
  return e;
}

std::uint64_t Bench::rollout(const NodeEni& start, Json::Value& out) {
  std::uint64_t retries = 0;
  // The rollout: every node attached its ENI and records it, from the version its watch showed.
  const auto t0 = Clock::now();
  // Every node until its record is written; a failed one tries again, as an agent's retry does
  // (sooner: the agent waits 5 s), at most 30 rounds.
  std::vector<int> pending(a_.nodes);
  for (int i = 0; i < a_.nodes; ++i) pending[i] = i;
  int rounds = 0;
  const int limitMs = a_.limitSeconds * 1000;
  for (; !pending.empty() && rounds < 30 && since(t0) * 1000 < limitMs; ++rounds) {
    // Shared: answers that come after the bound land here, not in a finished frame.
    struct Round {
      std::vector<int> failed;
      std::size_t answered = 0;
    };
    auto round = std::make_shared<Round>();
    for (int i : pending) {
      nodes_[i]->record(start, {entryOf(i)}, [round, i](bool ok) {
        ++round->answered;
        if (!ok) round->failed.push_back(i);
      });
    }
    const int left = std::max(limitMs - static_cast<int>(since(t0) * 1000), 1);
    if (!loop_.runUntil([&] { return round->answered == pending.size(); }, Duration(left))) {
      out["rollout_cut_at_limit"] = true;
      out["unanswered"] = static_cast<Json::UInt64>(pending.size() - round->answered);
      pending.resize(pending.size() - round->answered + round->failed.size());
      break;
    }
    retries += round->failed.size();
    pending = round->failed;
  }
  out["recorded"] = a_.nodes - static_cast<int>(pending.size());
  out["retried_writes"] = static_cast<Json::UInt64>(retries);
  for (const auto& n : nodes_) {
    if (!n->lastError().empty())
      out["write_errors"][n->lastError()] = out["write_errors"].get(n->lastError(), 0).asInt() + 1;
  }
  out["seconds_to_recorded"] = since(t0);
  // What the watches still bring, and the agents' next metrics snapshot (about once a second).
  loop_.runUntil([] { return false; }, Duration(3000));
  out["max_object_bytes"] = static_cast<Json::UInt64>(maxObjectBytes());
  std::uint64_t writes = 0;
  for (const auto& n : nodes_) writes += n->writes();
  out["writes_per_node_rollout"] = static_cast<double>(writes) / a_.nodes;
  return writes;
}

// One reading per real agent; nullopt when its /metrics did not answer.
std::vector<std::optional<AgentTraffic>> Bench::scrapeAgents() {
  std::vector<std::optional<AgentTraffic>> out;
  for (const auto& address : a_.realMetrics) {
    auto r = await<HttpResponse>([&](auto done) {
      HttpRequest get;
      get.url = "http://" + address + "/metrics";
      http_.start(std::move(get), done);
    });
    if (r && r->status == 200) {
      out.push_back(parseTraffic(r->body));
    } else {
      out.push_back(std::nullopt);
    }
  }
  return out;
}

// The most any real agent received between `before` and now: bytes of watches and lists, and
// watch events, over every resource. Only the simulated nodes wrote in between.
void Bench::reportForeign(const std::vector<std::optional<AgentTraffic>>& before,
                          std::uint64_t watcherBytes, Json::Value& out) {
  const auto after = scrapeAgents();
  std::uint64_t bytes = 0, events = 0, total = 0, read = 0;
  for (std::size_t i = 0; i < after.size() && i < before.size(); ++i) {
    if (!after[i] || !before[i]) continue;
    const AgentTraffic &from = *before[i], &to = *after[i];
    ++read;
    const std::uint64_t b = to.bytes - std::min(to.bytes, from.bytes);
    total += b;
    events = std::max(events, to.events - std::min(to.events, from.events));
    if (b < bytes) continue;
    bytes = b;
    out["foreign_bytes_by_resource"] = Json::objectValue;
    for (const auto& [resource, n] : to.bytesByResource) {
      auto was = from.bytesByResource.find(resource);
      const std::uint64_t start = was == from.bytesByResource.end() ? 0 : was->second;
      out["foreign_bytes_by_resource"][resource] = static_cast<Json::UInt64>(n - start);
    }
  }
  out["agents_read"] = static_cast<Json::UInt64>(read);  // both /metrics readings answered
  out["foreign_bytes_source"] =
      read == 0 ? "none" : "real agents' eni_agent_kube_*_bytes_total, max over agents";
  if (read == 0) {
    out["foreign_bytes_per_agent"] = Json::nullValue;
  } else {
    out["foreign_bytes_per_agent"] = static_cast<Json::UInt64>(bytes);
    out["foreign_bytes_per_agent_mean"] = static_cast<double>(total) / static_cast<double>(read);
  }
  out["foreign_events_per_agent"] = static_cast<Json::UInt64>(events);
  // Cross-check: the bench's own watchers, opened as an agent's NodeENI watch; they count the
  // objects re-serialized, not the bytes on the wire.
  out["watcher_nodeeni_bytes_cross_check"] = static_cast<Json::UInt64>(watcherBytes);
}

void Bench::deletion(std::uint64_t writes, Json::Value& out) {
  // Deletion: every node has released its ENI and runs the protocol, at once.
  auto del = await<Json::Value>([&](auto done) {
    admin_.remove(ObjectRef{ResourceKind::nodeEnis(), "", a_.nodeEni, ""}, done);
  });
  auto deleting = getNodeEni();
  const auto t1 = Clock::now();
  // Rounds until the NodeENI is gone, as agents retry (the old design's writes fail under
  // contention), bounded by --limit-seconds.
  double gone = -1;
  if (!deleting && deleting.error().code == ErrorCode::NotFound) {
    gone = since(t1);  // no finalizer was ever added: deleted at once, nobody cleaned up
    out["deleted_without_finalizer"] = true;
  }
  for (int round = 0; deleting && round < 10 && gone < 0; ++round) {
    if (since(t1) > a_.limitSeconds) break;
    forAll(
        [&](int i, std::function<void()> done) {
          nodes_[i]->cleanUp(*deleting, [done](bool) { done(); });
        },
        a_.limitSeconds * 1000);
    gone = waitGone(5000);
    deleting = getNodeEni();
  }
  out["seconds_to_deletion_complete"] = gone < 0 ? -1.0 : since(t1);
  std::uint64_t total = 0;
  for (const auto& n : nodes_) total += n->writes();
  out["writes_per_node_deletion"] = static_cast<double>(total - writes) / a_.nodes;
}

Result<NodeEni> Bench::createNodeEni() {
  Json::Value neni;
  neni["apiVersion"] = "networking.k8s.aws/v1alpha1";
  neni["kind"] = "NodeENI";
  neni["metadata"]["name"] = a_.nodeEni;
  neni["spec"]["nodeSelector"][a_.labelKey] = a_.labelValue;
  neni["spec"]["subnetID"] = a_.subnet;
  neni["spec"]["deviceIndex"] = 1;
  auto created = await<Json::Value>([&](auto done) {
    admin_.create(ObjectRef{ResourceKind::nodeEnis(), "", "", ""}, neni, done);
  });
  if (!created) return fail(created.error());
  return getNodeEni();
}

Json::Value Bench::run() {
  Json::Value out;
  out["design"] = a_.design;
  out["virtual_nodes"] = a_.nodes;
  out["watchers"] = a_.watchers;
  createNodes();
  const auto createdAt = Clock::now();
  auto start = createNodeEni();
  if (start && !a_.realNodes.empty()) {
    // The real agents first, so that only the simulated nodes write in the window measured next.
    out["real_agents"] = static_cast<Json::UInt64>(a_.realNodes.size());
    out["real_seconds_to_attached_and_recorded"] = waitRealAttached(createdAt, 600000);
    loop_.runUntil([] { return false; }, Duration(3000));
    start = getNodeEni();  // as the simulated nodes' watch shows it now
  }
  if (!start) {
    out["error"] = "cannot create or read the NodeENI: " + start.error().describe();
    return out;
  }
  startWatchers(start->meta.resourceVersion);
  for (int i = 0; i < a_.nodes; ++i)
    nodes_.push_back(std::make_unique<testing::VirtualNode>(bounded_, clock_, nodeName(i),
                                                            nodeUids_[i], a_.design == "old"));
  const auto before = scrapeAgents();
  const std::uint64_t writes = rollout(*start, out);
  std::uint64_t watcherBytes = 0, watcherEvents = 0;
  for (const auto& w : watchers_) {
    watcherBytes = std::max(watcherBytes, w.bytes);
    watcherEvents = std::max(watcherEvents, w.events);
  }
  reportForeign(before, watcherBytes, out);
  out["watcher_nodeeni_events_cross_check"] = static_cast<Json::UInt64>(watcherEvents);
  deletion(writes, out);
  for (auto& w : watchers_) agent_.cancelWatch(w.id);
  deleteNodes();
  return out;
}

std::vector<std::string> splitCommas(const std::string& v) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at <= v.size();) {
    const auto comma = std::min(v.find(',', at), v.size());
    if (comma > at) out.push_back(v.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

bool parse(int argc, char** argv, Args& a) {
  const std::map<std::string, std::function<void(const std::string&)>> flags = {
      {"--admin-kubeconfig", [&](const std::string& v) { a.adminKubeconfig = v; }},
      {"--agent-kubeconfig", [&](const std::string& v) { a.agentKubeconfig = v; }},
      {"--virtual-nodes", [&](const std::string& v) { a.nodes = std::stoi(v); }},
      {"--design", [&](const std::string& v) { a.design = v; }},
      {"--watchers", [&](const std::string& v) { a.watchers = std::stoi(v); }},
      {"--nodeeni", [&](const std::string& v) { a.nodeEni = v; }},
      {"--prefix", [&](const std::string& v) { a.prefix = v; }},
      {"--subnet", [&](const std::string& v) { a.subnet = v; }},
      {"--limit-seconds", [&](const std::string& v) { a.limitSeconds = std::stoi(v); }},
      {"--real-nodes", [&](const std::string& v) { a.realNodes = splitCommas(v); }},
      {"--real-metrics", [&](const std::string& v) { a.realMetrics = splitCommas(v); }},
      {"--label",
       [&](const std::string& v) {
         a.labelKey = v.substr(0, v.find('='));
         a.labelValue = v.substr(v.find('=') + 1);
       }},
  };
  for (int i = 1; i + 1 < argc; i += 2) {
    auto flag = flags.find(argv[i]);
    if (flag == flags.end()) return false;
    flag->second(argv[i + 1]);
  }
  return !a.adminKubeconfig.empty() && !a.agentKubeconfig.empty() &&
         (a.design == "new" || a.design == "old");
}

}  // namespace
}  // namespace eni

int main(int argc, char** argv) {
  eni::Args a;
  if (!eni::parse(argc, argv, a)) {
    std::cerr << "usage: eni_fleet_nodeeni --admin-kubeconfig A --agent-kubeconfig B "
                 "--virtual-nodes N --design new|old [--watchers K] [--nodeeni NAME] "
                 "[--prefix P] [--label KEY=VALUE]\n";
    return 2;
  }
  eni::Bench bench(a);
  std::cout << eni::toJson(bench.run()) << std::endl;
  return 0;
}
