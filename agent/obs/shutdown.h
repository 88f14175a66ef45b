#pragma once

#include <functional>
#include <string>
#include <vector>

namespace eni {

/// A server on TCP ports that can be stopped: HealthServer, MetricsServer (civetweb).
struct Stoppable {
  std::function<void()> stop;  // blocks until the server's threads are gone
  std::string host;            // an address it listens on, to wake it
  std::vector<int> ports;
};

/// Stops every server at once: each stop runs on a thread of its own while this thread connects
/// to their ports every 10 ms. civetweb's master thread sleeps in poll() for up to 2 s between
/// looks at its stop flag; a connection wakes it at once. So a SIGTERM ends the process in
/// milliseconds instead of 2 s per server, one after the other. Returns when all have stopped.
void stopTogether(std::vector<Stoppable> servers);

}  // namespace eni
