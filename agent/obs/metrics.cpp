#include "agent/obs/metrics.h"

#include <limits>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "agent/obs/health_server.h"

namespace eni {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily& addFamily(std::vector<MetricFamily>& out, const char* name, const char* help,
                        MetricType type) {
  out.push_back(MetricFamily{name, help, type, {}});
  return out.back();
}

ClientMetric counter(double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = v;
  return m;
}

ClientMetric histogram(const Histogram& h) {
  ClientMetric m;
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum;
  for (std::size_t i = 0; i < h.bounds.size(); ++i)
    m.histogram.bucket.push_back({h.counts[i], h.bounds[i]});
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  return m;
}

void addAwsFamilies(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  auto& calls = addFamily(out, "eni_agent_aws_api_calls_total",
                          "EC2 calls by operation and final result", MetricType::Counter);
  for (const auto& [key, n] : s.awsCalls) {
    calls.metric.push_back(
        counter(static_cast<double>(n), {{"operation", key.first}, {"result", key.second}}));
  }
  auto& durations =
      addFamily(out, "eni_agent_aws_api_duration_seconds",
                "EC2 HTTP attempts by operation, request to answer", MetricType::Histogram);
  for (const auto& [operation, h] : s.awsDuration) {
    durations.metric.push_back(histogram(h));
    durations.metric.back().label = {{"operation", operation}};
  }
  addFamily(out, "eni_agent_aws_throttled_total", "EC2 calls that ended throttled",
            MetricType::Counter)
      .metric.push_back(counter(static_cast<double>(s.awsThrottled)));
  addFamily(out, "eni_agent_imds_requests_total", "HTTP requests to IMDS, token requests included",
            MetricType::Counter)
      .metric.push_back(counter(static_cast<double>(s.imdsRequests)));
}

void addTaggingFamilies(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  auto& sources = addFamily(out, "eni_agent_resolve_source_total", "Pod ENIs found, by source",
                            MetricType::Counter);
  for (const auto& [source, n] : s.resolveSources)
    sources.metric.push_back(counter(static_cast<double>(n), {{"source", source}}));
  auto& sync = addFamily(out, "eni_agent_pod_tag_sync_total",
                         "Pod tag syncs by result (condition reason)", MetricType::Counter);
  for (const auto& [result, n] : s.podTagSync)
    sync.metric.push_back(counter(static_cast<double>(n), {{"result", result}}));
  addFamily(out, "eni_agent_tag_sync_duration_seconds", "Annotation seen to tags on the ENI",
            MetricType::Histogram)
      .metric.push_back(histogram(s.tagSync));
}

void addReconcileFamilies(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  addFamily(out, "eni_agent_link_configure_duration_seconds", "Link event to link up with its MTU",
            MetricType::Histogram)
      .metric.push_back(histogram(s.linkConfigure));
  ClientMetric managed;
  managed.gauge.value = static_cast<double>(s.managedEnis);
  addFamily(out, "eni_agent_managed_enis", "NodeENI ENIs attached to this instance",
            MetricType::Gauge)
      .metric.push_back(managed);
  addFamily(out, "eni_agent_reconcile_errors_total", "Passes that hit an error and will retry",
            MetricType::Counter)
      .metric.push_back(counter(static_cast<double>(s.reconcileErrors)));
  addFamily(out, "eni_agent_watch_restarts_total", "Kubernetes watch streams re-opened",
            MetricType::Counter)
      .metric.push_back(counter(static_cast<double>(s.watchRestarts)));
}

void addByResource(std::vector<MetricFamily>& out, const char* name, const char* help,
                   const std::map<std::string, std::uint64_t>& values) {
  auto& family = addFamily(out, name, help, MetricType::Counter);
  for (const auto& [resource, n] : values)
    family.metric.push_back(counter(static_cast<double>(n), {{"resource", resource}}));
}

void addKubeFamilies(const MetricsSnapshot& s, std::vector<MetricFamily>& out) {
  addByResource(out, "eni_agent_kube_watch_bytes_total",
                "Bytes received on Kubernetes watch streams, by resource", s.kubeWatchBytes);
  addByResource(out, "eni_agent_kube_list_bytes_total",
                "Bytes of Kubernetes list answers, by resource", s.kubeListBytes);
  addByResource(out, "eni_agent_kube_watch_events_total",
                "Kubernetes watch events (added, modified, deleted), by resource",
                s.kubeWatchEvents);
}

}  // namespace

class MetricsServer::Collector final : public prometheus::Collectable {
 public:
  void set(MetricsSnapshot s) {
    std::lock_guard<std::mutex> lock(mutex_);
    snapshot_ = std::move(s);
  }

  std::vector<MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<MetricFamily> out;
    addAwsFamilies(snapshot_, out);
    addTaggingFamilies(snapshot_, out);
    addReconcileFamilies(snapshot_, out);
    addKubeFamilies(snapshot_, out);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  MetricsSnapshot snapshot_;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& bindAddress) {
  if (bindAddress.empty() || bindAddress == "0") return std::unique_ptr<MetricsServer>();
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->collector_ = std::make_shared<Collector>();
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", civetPorts(bindAddress), "num_threads", "1"});
  } catch (const std::exception& e) {
    return fail(ErrorCode::Invalid,
                "cannot listen on --metrics-bind-address " + bindAddress + ": " + e.what());
  }
  server->exposer_->RegisterCollectable(server->collector_);
  server->wakeHost_ = localAddressOf(bindAddress);
  return server;
}

MetricsServer::~MetricsServer() = default;

Stoppable MetricsServer::stopper() {
  Stoppable s;
  s.host = wakeHost_;
  if (exposer_) s.ports = exposer_->GetListeningPorts();
  s.stop = [this] { exposer_.reset(); };
  return s;
}

void MetricsServer::publish(MetricsSnapshot snapshot) { collector_->set(std::move(snapshot)); }

}  // namespace eni
