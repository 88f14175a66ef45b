#include "agent/kube/node_lease.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <ctime>

#include "agent/base/json.h"
#include "agent/base/log.h"

namespace eni {
namespace {

constexpr std::size_t kMaxObjectName = 253;

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// MicroTime, as the Lease API stores renewTime and acquireTime.
std::string microTime(std::int64_t seconds) {
  const std::time_t t = seconds;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[40];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
  return out;
}

// When the holder's lease runs out by its own clock: renewTime + leaseDurationSeconds, for
// people to read (expiry itself is judged on this agent's clock).
std::string expiryOf(const Json::Value& spec) {
  std::tm tm{};
  const std::string renew = stringField(spec, "renewTime");
  if (std::sscanf(renew.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return "an unknown time (no renewTime)";
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t until = timegm(&tm) + intField(spec, "leaseDurationSeconds");
  std::tm out{};
  gmtime_r(&until, &out);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &out);
  return text;
}

std::int64_t seconds(Duration d) {
  return std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

}  // namespace

std::string leaseNameFor(const std::string& nodeName) {
  std::string name = "eni-agent-";
  bool mapped = false;
  for (unsigned char c : nodeName) {
    const char lower = static_cast<char>(std::tolower(c));
    const bool ok = std::isalnum(static_cast<unsigned char>(lower)) || lower == '-' || lower == '.';
    name += ok ? lower : '-';
    mapped = mapped || !ok || lower != static_cast<char>(c);
  }
  if (!mapped && name.size() <= kMaxObjectName &&
      std::isalnum(static_cast<unsigned char>(name.back()))) {
    return name;
  }
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(nodeName)));
  name.resize(std::min(name.size(), kMaxObjectName - 17));
  while (!std::isalnum(static_cast<unsigned char>(name.back()))) name.pop_back();
  return name + "-" + hash;
}

std::string leaseIdentity(const std::string& podName) {
  if (!podName.empty()) return podName;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] != '\0' ? host : "unknown-host") + "_" + std::to_string(getpid());
}

NodeLease::NodeLease(KubeApi& api, Scheduler& scheduler, const Clock& clock,
                     NodeLeaseOptions options, Handlers handlers)
    : api_(api),
      clock_(clock),
      options_(std::move(options)),
      handlers_(std::move(handlers)),
      next_(scheduler, [this] { (this->*nextStep_)(); }) {}

NodeLease::~NodeLease() = default;

ObjectRef NodeLease::ref() const { return ObjectRef{leasesKind(), options_.ns, options_.name, ""}; }

void NodeLease::start() { attempt(); }

std::string NodeLease::notReadyReason() const { return held_ ? std::string() : reason_; }

void NodeLease::retryIn(Duration delay, void (NodeLease::*step)()) {
  nextStep_ = step;
  next_.enable(delay);
}

void NodeLease::attempt() {
  if (stopped_) return;
  api_.get(ref(), [this](Result<Json::Value> read) { onRead(std::move(read)); });
}

void NodeLease::onRead(Result<Json::Value> read) {
  if (stopped_) return;
  if (!read) {
    if (read.error().code == ErrorCode::NotFound) return take(Json::Value(), true);
    return failed("read", read.error());
  }
  const Json::Value& spec = objectField(*read, "spec");
  const std::string holder = stringField(spec, "holderIdentity");
  // A holder that finds someone else in its lease (it was deleted and taken) stops at once.
  if (held_ && !holder.empty() && holder != options_.identity) return loseTo(holder);
  const std::string seen = holder + "|" + stringField(spec, "renewTime") + "|" +
                           stringField(objectField(*read, "metadata"), "resourceVersion");
  if (seen != observed_) {
    observed_ = seen;
    observedAt_ = clock_.now();
  }
  const Duration duration(1000 *
                          intField(spec, "leaseDurationSeconds", seconds(options_.leaseDuration)));
  const bool expired = clock_.now() - observedAt_ >= duration;
  if (holder.empty() || holder == options_.identity || expired) return take(*read, false);
  waitFor(*read);
}

Json::Value NodeLease::record(Json::Value lease, bool taking) const {
  if (!lease.isObject()) {
    lease = Json::Value(Json::objectValue);
    lease["apiVersion"] = "coordination.k8s.io/v1";
    lease["kind"] = "Lease";
    lease["metadata"]["name"] = options_.name;
    lease["metadata"]["namespace"] = options_.ns;
    lease["spec"]["leaseTransitions"] = 0;
  }
  Json::Value& spec = lease["spec"];
  const std::string now = microTime(clock_.wallSeconds());
  if (taking && stringField(spec, "holderIdentity") != options_.identity) {
    if (!stringField(spec, "holderIdentity").empty() || spec.isMember("acquireTime")) {
      spec["leaseTransitions"] = Json::Int64(intField(spec, "leaseTransitions") + 1);
    }
    spec["acquireTime"] = now;
  }
  spec["holderIdentity"] = options_.identity;
  spec["leaseDurationSeconds"] = Json::Int64(seconds(options_.leaseDuration));
  spec["renewTime"] = now;
  return lease;
}

void NodeLease::take(Json::Value lease, bool fresh) {
  auto done = [this](Result<Json::Value> written) {
    if (stopped_) return;
    if (written) return becomeHolder(std::move(*written));
    if (written.error().code == ErrorCode::Conflict) {
      // Another agent wrote it between the read and this write: read again.
      reason_ = "Acquiring: another agent wrote the lease first; reading it again";
      return retryIn(options_.retryInterval, &NodeLease::attempt);
    }
    failed(held_ ? "re-create" : "take", written.error());
  };
  if (fresh) {
    api_.create(ref(), record(std::move(lease), true), std::move(done));
  } else {
    api_.update(ref(), record(std::move(lease), true), std::move(done));
  }
}

void NodeLease::becomeHolder(Json::Value lease) {
  lease_ = std::move(lease);
  held_ = true;
  reason_.clear();
  retryIn(options_.renewInterval, &NodeLease::renew);
  if (everHeld_) return;
  everHeld_ = true;
  logInfo("acquired the node lease", {{"lease", options_.ns + "/" + options_.name},
                                      {"holder", options_.identity},
                                      {"previous_holder", lastHolderLogged_}});
  if (handlers_.acquired) handlers_.acquired();
}

void NodeLease::renew() {
  if (stopped_) return;
  api_.update(ref(), record(lease_, false), [this](Result<Json::Value> written) {
    if (stopped_) return;
    if (!written) return onRenewFailed(written.error());
    if (!reason_.empty()) logInfo("renewed the node lease again", {{"lease", options_.name}});
    reason_.clear();
    lease_ = std::move(*written);
    retryIn(options_.renewInterval, &NodeLease::renew);
  });
}

void NodeLease::onRenewFailed(const Error& error) {
  // A conflict means the lease changed under this agent: read it; a deleted lease is written
  // anew. Either way onRead decides whether another agent holds it now.
  if (error.code == ErrorCode::Conflict || error.code == ErrorCode::NotFound) return attempt();
  // Anything else (the API server away, throttled, RBAC) keeps the lease: nobody can take it
  // over without the API server. Renewals go on at the retry interval.
  if (reason_.empty()) {
    logWarn("cannot renew the node lease, will retry",
            {{"lease", options_.ns + "/" + options_.name}, {"error", error.describe()}});
  }
  reason_ = "renewing: " + error.describe();
  retryIn(options_.retryInterval, &NodeLease::renew);
}

void NodeLease::waitFor(const Json::Value& lease) {
  const Json::Value& spec = objectField(lease, "spec");
  const std::string holder = stringField(spec, "holderIdentity");
  // No time in the reason: it would change with every renewal of the holder, and each change of
  // a readiness reason is logged. The log line below, once per holder, says until when.
  reason_ = "HeldByOther: held by " + holder +
            "; this agent takes over when that one stops (lease " + options_.ns + "/" +
            options_.name + ")";
  if (holder != lastHolderLogged_) {
    lastHolderLogged_ = holder;
    logWarn("another agent holds this node's lease; waiting for it",
            {{"lease", options_.ns + "/" + options_.name},
             {"holder", holder},
             {"until", expiryOf(spec)}});
  }
  retryIn(options_.retryInterval, &NodeLease::attempt);
}

void NodeLease::failed(const std::string& what, const Error& error) {
  const bool forbidden = error.code == ErrorCode::Permission;
  reason_ = std::string(forbidden ? "Forbidden" : "LeaseError") + ": cannot " + what + " lease " +
            options_.ns + "/" + options_.name + ": " + error.describe() +
            (forbidden ? " (the agent needs leases get, create and update in namespace " +
                             options_.ns + ")"
                       : "");
  retryIn(options_.retryInterval, &NodeLease::attempt);
}

void NodeLease::loseTo(const std::string& holder) {
  held_ = false;
  stopped_ = true;
  next_.disable();
  reason_ = "HeldByOther: taken over by " + holder;
  if (handlers_.lost) {
    handlers_.lost("another agent (" + holder + ") took lease " + options_.ns + "/" +
                   options_.name + " over");
  }
}

void NodeLease::release(const std::function<void(Result<void>)>& done) {
  const bool wasHeld = held_;
  held_ = false;
  stopped_ = true;
  next_.disable();
  reason_ = "Stopping: released";
  if (!wasHeld) return done({});
  // No holder: the next agent takes it at its next read. A renewal still in flight makes this
  // write conflict; then the fresh version is read and the release tried once more.
  auto write = [this](Json::Value lease, std::function<void(Result<Json::Value>)> then) {
    Json::Value& spec = lease["spec"];
    spec.removeMember("holderIdentity");
    spec["leaseDurationSeconds"] = 1;
    spec["renewTime"] = microTime(clock_.wallSeconds());
    api_.update(ref(), lease, std::move(then));
  };
  write(lease_, [this, write, done](Result<Json::Value> first) {
    if (first || first.error().code != ErrorCode::Conflict) {
      if (first) logInfo("released the node lease", {{"lease", options_.ns + "/" + options_.name}});
      return done(first ? Result<void>() : fail(first.error()));
    }
    api_.get(ref(), [this, write, done](Result<Json::Value> read) {
      if (!read) return done(fail(read.error()));
      if (stringField(objectField(*read, "spec"), "holderIdentity") != options_.identity) {
        return done({});  // not ours any more: nothing to give up
      }
      write(*read, [this, done](Result<Json::Value> second) {
        if (second)
          logInfo("released the node lease", {{"lease", options_.ns + "/" + options_.name}});
        done(second ? Result<void>() : fail(second.error()));
      });
    });
  });
}

}  // namespace eni
