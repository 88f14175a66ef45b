#include "agent/obs/metrics.h"

#include <limits>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "agent/obs/health_server.h"

namespace eni {

class MetricsServer::Collector final : public prometheus::Collectable {
 public:
  void set(MetricsSnapshot s) {
    std::lock_guard<std::mutex> lock(mutex_);
    snapshot_ = std::move(s);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    const MetricsSnapshot& s = snapshot_;
    std::vector<prometheus::MetricFamily> out;
    auto family = [&out](const char* name, const char* help,
                         prometheus::MetricType type) -> prometheus::MetricFamily& {
      out.push_back(prometheus::MetricFamily{name, help, type, {}});
      return out.back();
    };
    auto counter = [](double v, std::vector<prometheus::ClientMetric::Label> labels = {}) {
      prometheus::ClientMetric m;
      m.label = std::move(labels);
      m.counter.value = v;
      return m;
    };
    auto histogram = [](const Histogram& h) {
      prometheus::ClientMetric m;
      m.histogram.sample_count = h.count;
      m.histogram.sample_sum = h.sum;
      for (std::size_t i = 0; i < h.bounds.size(); ++i)
        m.histogram.bucket.push_back({h.counts[i], h.bounds[i]});
      m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
      return m;
    };
    using prometheus::MetricType;
    auto& calls = family("eni_agent_aws_api_calls_total", "EC2 calls by operation and final result",
                         MetricType::Counter);
    for (const auto& [key, n] : s.awsCalls) {
      calls.metric.push_back(
          counter(static_cast<double>(n), {{"operation", key.first}, {"result", key.second}}));
    }
    auto& durations =
        family("eni_agent_aws_api_duration_seconds",
               "EC2 HTTP attempts by operation, request to answer", MetricType::Histogram);
    for (const auto& [operation, h] : s.awsDuration) {
      durations.metric.push_back(histogram(h));
      durations.metric.back().label = {{"operation", operation}};
    }
    family("eni_agent_aws_throttled_total", "EC2 calls that ended throttled", MetricType::Counter)
        .metric.push_back(counter(static_cast<double>(s.awsThrottled)));
    family("eni_agent_imds_requests_total", "HTTP requests to IMDS, token requests included",
           MetricType::Counter)
        .metric.push_back(counter(static_cast<double>(s.imdsRequests)));
    auto& sources =
        family("eni_agent_resolve_source_total", "Pod ENIs found, by source", MetricType::Counter);
    for (const auto& [source, n] : s.resolveSources)
      sources.metric.push_back(counter(static_cast<double>(n), {{"source", source}}));
    auto& sync = family("eni_agent_pod_tag_sync_total",
                        "Pod tag syncs by result (condition reason)", MetricType::Counter);
    for (const auto& [result, n] : s.podTagSync)
      sync.metric.push_back(counter(static_cast<double>(n), {{"result", result}}));
    family("eni_agent_tag_sync_duration_seconds", "Annotation seen to tags on the ENI",
           MetricType::Histogram)
        .metric.push_back(histogram(s.tagSync));
    family("eni_agent_link_configure_duration_seconds", "Link event to link up with its MTU",
           MetricType::Histogram)
        .metric.push_back(histogram(s.linkConfigure));
    prometheus::ClientMetric managed;
    managed.gauge.value = static_cast<double>(s.managedEnis);
    family("eni_agent_managed_enis", "NodeENI ENIs attached to this instance", MetricType::Gauge)
        .metric.push_back(managed);
    family("eni_agent_reconcile_errors_total", "Passes that hit an error and will retry",
           MetricType::Counter)
        .metric.push_back(counter(static_cast<double>(s.reconcileErrors)));
    family("eni_agent_watch_restarts_total", "Kubernetes watch streams re-opened",
           MetricType::Counter)
        .metric.push_back(counter(static_cast<double>(s.watchRestarts)));
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
