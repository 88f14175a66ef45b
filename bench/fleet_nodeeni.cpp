// bench/fleet --virtual-nodes: N simulated nodes doing what an agent does toward the API server
// for one NodeENI, through the agent's own code (tests/support VirtualNode:
// NodeEniAttachmentWriter, NodeEniStatusWriter, planBookkeeping, decideRemaining), and K watchers
// opened the way an agent watches NodeENIs (CurlKubeClient, agent credentials, no selector),
// counting what they receive. Prints one JSON object. Never fails on time; every wait is bounded.
//
//   eni_fleet_nodeeni --admin-kubeconfig A --agent-kubeconfig B --virtual-nodes N
//                     --design new|old [--watchers K] [--nodeeni NAME] [--label KEY=VALUE]
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
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
  std::vector<std::string> realNodes;  // real agents' nodes the NodeENI also selects
  int nodes = 100, watchers = 3;
};

struct Watcher {
  WatchId id = 0;
  std::uint64_t events = 0, bytes = 0;
};

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
  void startWatchers(const std::string& fromVersion);
  std::uint64_t maxObjectBytes();
  double waitGone(int limitMs);
  double waitRealAttached(Clock::time_point t0, int limitMs);
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

std::uint64_t Bench::rollout(const NodeEni& start, Json::Value& out) {
  // The rollout: every node attached its ENI and records it, from the version its watch showed.
  const auto t0 = Clock::now();
  const int recorded = forAll(
      [&](int i, std::function<void()> done) {
        NodeEniAttachment e;
        e.instanceId = "i-0" + std::to_string(100000000 + i);
        e.eniId = "eni-0" + std::to_string(100000000 + i);
        e.attachmentId = "eni-attach-0" + std::to_string(100000000 + i);
        e.subnetId = "subnet-0fleetbench0000";
        e.deviceIndex = 1;
        e.mtu = 9001;
        e.status = "attached";
        nodes_[i]->record(start, {e}, std::move(done));
      },
      1800000);
  out["seconds_to_recorded"] = since(t0);
  if (!a_.realNodes.empty()) {
    out["real_agents"] = static_cast<Json::UInt64>(a_.realNodes.size());
    out["real_seconds_to_attached_and_recorded"] = waitRealAttached(t0, 600000);
  }
  out["recorded"] = recorded;
  loop_.runUntil([] { return false; }, Duration(2000));  // what the watches still bring
  out["max_object_bytes"] = static_cast<Json::UInt64>(maxObjectBytes());
  std::uint64_t writes = 0;
  for (const auto& n : nodes_) writes += n->writes();
  out["writes_per_node_rollout"] = static_cast<double>(writes) / a_.nodes;
  std::uint64_t bytes = 0, events = 0;
  for (const auto& w : watchers_) {
    bytes = std::max(bytes, w.bytes);
    events = std::max(events, w.events);
  }
  out["foreign_bytes_per_agent"] = static_cast<Json::UInt64>(bytes);
  out["foreign_events_per_agent"] = static_cast<Json::UInt64>(events);

  return writes;
}

void Bench::deletion(std::uint64_t writes, Json::Value& out) {
  // Deletion: every node has released its ENI and runs the protocol, at once.
  auto del = await<Json::Value>([&](auto done) {
    admin_.remove(ObjectRef{ResourceKind::nodeEnis(), "", a_.nodeEni, ""}, done);
  });
  auto deleting = getNodeEni();
  const auto t1 = Clock::now();
  if (deleting) {
    forAll(
        [&](int i, std::function<void()> done) {
          nodes_[i]->cleanUp(*deleting, [done](bool) { done(); });
        },
        1800000);
  }
  const double gone = waitGone(120000);
  out["seconds_to_deletion_complete"] = gone < 0 ? -1.0 : since(t1);
  std::uint64_t total = 0;
  for (const auto& n : nodes_) total += n->writes();
  out["writes_per_node_deletion"] = static_cast<double>(total - writes) / a_.nodes;
}

Json::Value Bench::run() {
  Json::Value out;
  out["design"] = a_.design;
  out["virtual_nodes"] = a_.nodes;
  out["watchers"] = a_.watchers;
  createNodes();
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
  auto start = getNodeEni();
  if (!created || !start) {
    out["error"] = "cannot create the NodeENI";
    return out;
  }
  startWatchers(start->meta.resourceVersion);
  for (int i = 0; i < a_.nodes; ++i)
    nodes_.push_back(std::make_unique<testing::VirtualNode>(bounded_, clock_, nodeName(i),
                                                            nodeUids_[i], a_.design == "old"));
  const std::uint64_t writes = rollout(*start, out);
  deletion(writes, out);
  for (auto& w : watchers_) agent_.cancelWatch(w.id);
  deleteNodes();
  return out;
}

bool parse(int argc, char** argv, Args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--admin-kubeconfig")
      a.adminKubeconfig = v;
    else if (k == "--agent-kubeconfig")
      a.agentKubeconfig = v;
    else if (k == "--virtual-nodes")
      a.nodes = std::stoi(v);
    else if (k == "--design")
      a.design = v;
    else if (k == "--watchers")
      a.watchers = std::stoi(v);
    else if (k == "--nodeeni")
      a.nodeEni = v;
    else if (k == "--prefix")
      a.prefix = v;
    else if (k == "--label") {
      a.labelKey = v.substr(0, v.find('='));
      a.labelValue = v.substr(v.find('=') + 1);
    } else
      return false;
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
