// stopTogether: both HTTP servers stop, and their ports are closed when it returns.
#include "agent/obs/shutdown.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "agent/obs/health_server.h"
#include "agent/obs/metrics.h"

namespace eni {
namespace {

bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

TEST(StopTogether, StopsEveryServerAndClosesTheirPorts) {
  auto health = HealthServer::start("127.0.0.1:0");
  auto metrics = MetricsServer::start("127.0.0.1:0");
  ASSERT_TRUE(health && *health) << health.error().message;
  ASSERT_TRUE(metrics && *metrics) << metrics.error().message;
  std::vector<Stoppable> servers{(*health)->stopper(), (*metrics)->stopper()};
  ASSERT_EQ(servers[0].ports.size(), 1u);
  ASSERT_EQ(servers[1].ports.size(), 1u);
  const int healthPort = servers[0].ports[0], metricsPort = servers[1].ports[0];
  EXPECT_TRUE(accepts(healthPort));
  EXPECT_TRUE(accepts(metricsPort));
  stopTogether(std::move(servers));
  EXPECT_FALSE(accepts(healthPort));
  EXPECT_FALSE(accepts(metricsPort));
  EXPECT_EQ(localAddressOf(":8090"), "127.0.0.1");
  EXPECT_EQ(localAddressOf("10.0.0.5:8081"), "10.0.0.5");
}

}  // namespace
}  // namespace eni
