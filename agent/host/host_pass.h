#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/eni/eni_actions.h"
#include "agent/eni/eni_lifecycle.h"
#include "agent/host/host_config.h"
#include "agent/state/node_state.h"
#include "ec2/aws_types.h"
#include "ec2/imds.h"

namespace eni {

/// The address and routing wishes for one attached interface, for the address configurator.
struct HostLink {
  std::string key;  // HostInterface::key()
  std::string eniId;
  std::string mac;
  std::uint32_t mtu = 0;
  std::int64_t deviceIndex = -1;  // the attachment's real device index
  std::string primaryIpv4;
  std::string subnetCidr;  // e.g. 10.0.1.0/24, from IMDS
  bool configureAddress = false;
  bool policyRouting = false;
};

/// What one pass did, for STATUS=, readiness and logs.
struct HostPassReport {
  std::uint64_t pass = 0;
  bool complete = false;       // nothing left to retry or to create (config problems do not count)
  std::size_t enis = 0;        // ENIs of this instance
  std::size_t interfaces = 0;  // host.json interfaces attached
  std::size_t wanted = 0;      // host.json interfaces
  std::vector<std::string> problems;  // what to fix or what will be retried
};

/// What the loop thread hands one host pass.
struct HostPassInput {
  HostConfig config;
  NodeState state;
  std::vector<HostLink> previousLinks;  // kept when this pass cannot tell
  bool verify = false;                  // describe every ENI (drift check)
  bool dryRun = false;
  std::set<std::string> createStored;  // the write-ahead as stored
};

/// What observe read: IMDS (identity, interfaces), EC2 when due, host.json's interfaces with
/// their subnets resolved, and the lifecycle's view.
struct HostObservation {
  bool ok = false;     // identity and interfaces read (and the Describe, when one was due)
  bool reset = false;  // the state was another instance's: this pass starts cold
  std::string instanceId;
  InterfaceMap attached;
  std::map<std::string, NetworkInterface> described;  // ENIs a Describe showed this pass
  std::vector<DesiredEni> desired;
  std::vector<std::string> problems;  // config and lookup problems, with what to do
  bool retry = false;
  LifecycleObservation lifecycle;
};

/// The interfaces as one pass leaves them: records, links, and what changed.
struct HostInterfaces {
  std::vector<AttachmentRecord> records;  // the new NodeState::attachments, releases aside
  std::vector<HostLink> links;            // subnet CIDRs still to be read
  std::map<std::string, NetworkInterface> attachedNow;  // created or attached by this pass
  std::vector<std::string> problems;
  bool retry = false;
  std::set<std::string> failedKeys;  // their old ENIs stay: nothing released for them
};

/// The DesiredEni of host.json's interface `want` in `subnetId` on instance `me`: NodeENI
/// host-<index>, Node <instance ID>, and the ClientToken of that. Pure.
DesiredEni hostDesired(const HostInterface& want, const std::string& subnetId,
                       const std::string& me);

/// Turns the plan and the ensure results into records and links: one per interface attached (or
/// kept from the records), one "detached" record for an ENI whose attach failed (recorded all the
/// same: only a recorded ENI is ever released), and for an interface with a problem the record
/// and the link it had. `ensured` is empty for a dry run, whose kept interfaces stay. Pure.
HostInterfaces recordHostInterfaces(const HostPassInput& in, const HostObservation& observed,
                                    const EniActions& actions,
                                    const std::vector<EnsureResult>& ensured);

/// The releases' results into the state: an ENI gone leaves it; one whose release did not finish
/// stays recorded as releasing, with a problem, retried. Pure.
void recordHostReleases(const std::vector<ReleaseResult>& released, NodeState& state,
                        std::vector<std::string>& problems, bool& retry);

}  // namespace eni
