#include "agent/obs/shutdown.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace eni {
namespace {

// A connection attempt and nothing more: it is only there to wake a poll().
void knock(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) == 1)
    (void)::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::close(fd);
}

}  // namespace

void stopTogether(std::vector<Stoppable> servers) {
  std::atomic<std::size_t> running{servers.size()};
  std::vector<std::thread> stops;
  for (auto& server : servers) {
    stops.emplace_back([&running, stop = std::move(server.stop)] {
      if (stop) stop();
      --running;
    });
  }
  while (running.load() > 0) {
    for (const auto& server : servers) {
      for (int port : server.ports) knock(server.host, port);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& t : stops) t.join();
}

}  // namespace eni
