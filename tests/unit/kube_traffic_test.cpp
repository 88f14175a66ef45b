// CurlKubeClient counts what the API server sends per resource, and /metrics reports it as
// eni_agent_kube_*_total{resource}: a canned API server on loopback answers a list and a watch
// stream, and the counters (then the scraped metric values) equal the bytes it sent.
#include "agent/kube/kube_traffic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/base/event_loop.h"
#include "agent/http/http_client.h"
#include "agent/kube/curl_kube_client.h"
#include "agent/obs/metrics.h"

namespace eni {
namespace {

const std::string kListBody =
    R"({"kind":"NodeENIList","metadata":{"resourceVersion":"7"},"items":[)"
    R"({"metadata":{"name":"a","resourceVersion":"6"},"spec":{"subnetID":"subnet-1"}}]})";
// Two events about objects and a bookmark: 3 lines, 2 events.
const std::string kWatchBody =
    R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"8"}}})"
    "\n"
    R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})"
    "\n"
    R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"10"}}})"
    "\n";

int listenLoopback(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) return -1;
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// Answers `connections` requests, one per connection: the watch body when the request line
// asks for watch=1, else the list body.
void serve(int listener, int connections) {
  for (int i = 0; i < connections; ++i) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
    }
    const bool watch = request.substr(0, request.find('\n')).find("watch=1") != std::string::npos;
    const std::string& body = watch ? kWatchBody : kListBody;
    const std::string answer =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Connection: close\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)!::write(fd, answer.data(), answer.size());
    ::close(fd);
  }
}

std::string scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string get = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    (void)!::write(fd, get.data(), get.size());
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
  }
  ::close(fd);
  return out;
}

// The value of the first sample line that starts with `series`, or -1.
double sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(KubeTraffic, CountsBookmarkBytesButNotAsEvents) {
  KubeTraffic t;
  t.watchChunk("pods", 100);
  t.watchEvent("pods", WatchEventType::Opened);
  t.watchEvent("pods", WatchEventType::Bookmark);
  t.watchEvent("pods", WatchEventType::Modified);
  t.listPage("pods", 40);
  t.listPage("nodes", 7);
  EXPECT_EQ(t.byResource().at("pods"), (ResourceTraffic{100, 40, 1}));
  EXPECT_EQ(t.byResource().at("nodes"), (ResourceTraffic{0, 7, 0}));
}

TEST(KubeTraffic, TheClientCountsEveryByteItReceivedAndMetricsReportIt) {
  int port = 0;
  const int listener = listenLoopback(port);
  ASSERT_GE(listener, 0);
  std::thread server(serve, listener, 2);
  EventLoop loop;
  HttpClient http(loop);
  KubeConfig config;
  config.server = "http://127.0.0.1:" + std::to_string(port);
  config.token = "unit-test";
  KubeClientOptions options;
  options.watchIdleTimeout = Duration(0);
  CurlKubeClient client(http, config, options);

  bool listed = false;
  client.list(ResourceKind::nodeEnis(), "", {}, [&](Result<ObjectList> r) {
    EXPECT_TRUE(r) << r.error().describe();
    listed = true;
  });
  ASSERT_TRUE(loop.runUntil([&] { return listed; }, Duration(10000)));
  int events = 0;
  bool closed = false;
  client.watch(
      ResourceKind::nodeEnis(), "", {}, [&](WatchEvent) { ++events; },
      [&](Result<void>) { closed = true; });
  ASSERT_TRUE(loop.runUntil([&] { return closed; }, Duration(10000)));
  server.join();
  ::close(listener);
  EXPECT_EQ(events, 4) << "Opened, two events and a bookmark reach the handler";
  EXPECT_EQ(client.traffic().byResource().at("nodeenis"),
            (ResourceTraffic{kWatchBody.size(), kListBody.size(), 2}));

  auto metrics = MetricsServer::start("127.0.0.1:0");
  ASSERT_TRUE(metrics && *metrics);
  MetricsSnapshot m;
  for (const auto& [resource, t] : client.traffic().byResource()) {
    m.kubeWatchBytes[resource] = t.watchBytes;
    m.kubeListBytes[resource] = t.listBytes;
    m.kubeWatchEvents[resource] = t.watchEvents;
  }
  (*metrics)->publish(m);
  const std::string text = scrape((*metrics)->stopper().ports.at(0));
  EXPECT_EQ(sample(text, R"(eni_agent_kube_watch_bytes_total{resource="nodeenis"})"),
            static_cast<double>(kWatchBody.size()))
      << text;
  EXPECT_EQ(sample(text, R"(eni_agent_kube_list_bytes_total{resource="nodeenis"})"),
            static_cast<double>(kListBody.size()));
  EXPECT_EQ(sample(text, R"(eni_agent_kube_watch_events_total{resource="nodeenis"})"), 2.0);
}

}  // namespace
}  // namespace eni
