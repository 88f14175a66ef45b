#pragma once

#include <sys/types.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "agent/base/error.h"
#include "agent/base/event_loop.h"
#include "agent/kube/kube_api.h"
#include "ec2/curl_ec2_client.h"

namespace eni::testing {

/// The running test stack (tests/env/stack.py up), read from $ENI_STACK_DIR/stack.json.
struct TestStack {
  std::string dir;
  std::string apiserverUrl;
  std::string adminKubeconfig;
  std::string agentKubeconfig;
  std::string kubectl;
  std::string etcdEndpoint;
  std::string motoEndpoint;
  std::string imdsEndpoint;
  std::string region;
  std::string instanceId;
  std::string vpcId;
  std::string subnetA;
  std::string subnetB;
  std::string subnetC;  // a /17: moto's random IPs do not collide there
  std::string securityGroupId;
  std::string trunkEniId;  // the instance's trunk ENI (device index 99): branch ENIs hang off it
  std::string ec2ProxyEndpoint;
  std::string motoAuthEndpoint;
  std::string motoAuthAccessKeyId;
  std::string motoAuthSecretAccessKey;
  std::string authProxyEndpoint;  // the fault proxy in front of the signature-checking moto
  std::string stallProxyControl;  // tests/env/stall_proxy.py's control endpoint
  std::string stallKubeconfig;    // the agent's kubeconfig through the stall proxy

  /// Aborts with a clear message when the stack is not up (the ctest fixture starts it).
  static const TestStack& get();
  /// Runs `tests/env/stack.py <args> --dir <dir>`; returns its exit status.
  int control(const std::vector<std::string>& args) const;
  /// An HTTP call to a test-stack control endpoint (fault proxy, IMDS emulator); the body.
  std::string controlHttp(const std::string& method, const std::string& url,
                          const std::string& body = "") const;
};

/// A branch ENI as the VPC resource controller makes one for a pod with security groups: created
/// in `subnet` with the controller's tags (`vpcresources.k8s.aws/trunk-eni-id` naming the stack's
/// trunk, `vlan-id`, `eks:eni:owner`) plus `tags`, then associated with the trunk. It has no
/// attachment of its own; DescribeNetworkInterfaces shows it as InterfaceType "branch".
struct BranchEni {
  std::string id;
  std::string ip;
};
BranchEni makeBranchEni(CurlEc2Client& ec2, const std::string& subnet, std::vector<Tag> tags = {});
/// The vpc.amazonaws.com/pod-eni annotation's value for a pod on `eni` with `ip`.
std::string podEniAnnotation(const std::string& eni, const std::string& ip);

/// Runs a program to completion; returns exit status and stdout.
struct ProcessResult {
  int status = -1;
  std::string out;
  std::string err;
};
ProcessResult runProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extraEnv = {});

/// A program running in the background with its stderr in a file; killed on destruction.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv,
                    const std::vector<std::string>& extraEnv = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  /// Everything it wrote to stdout and stderr so far.
  std::string output() const;
  /// Polls output() until it contains `text` or `limit` passes (a bound on failure, not a timing
  /// assertion).
  bool waitForOutput(const std::string& text, int limitMs = 30000) const;
  /// SIGTERM, then wait; returns the exit status.
  int terminate();
  /// Sends `signal` (SIGSTOP, SIGCONT, SIGKILL...) without waiting.
  void signal(int signal);
  bool running();
  /// The process ID, to send it a signal (SIGHUP).
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string logPath_;
  int status_ = -1;
};

/// The eni-agent binary under test: $ENI_AGENT_BIN, else the one the build made (a test
/// target defines ENI_AGENT_BIN_DEFAULT).
inline std::string agentBinary() {
  if (const char* bin = std::getenv("ENI_AGENT_BIN")) return bin;
#ifdef ENI_AGENT_BIN_DEFAULT
  return ENI_AGENT_BIN_DEFAULT;
#else
  return "eni-agent";
#endif
}

/// The environment an agent runs with in tests: IMDS is the stack's emulator, EC2 goes through
/// the fault proxy, and test keys. Never the link-local metadata address of the machine itself.
/// POD_NAME is new for each call: one environment stands for one pod.
std::vector<std::string> agentEnv();
/// A TCP port on 127.0.0.1 that was free a moment ago.
int freePort();

/// Runs the loop until `start`'s callback fires; fails with Internal after `limit`.
template <class T>
Result<T> await(EventLoop& loop, const std::function<void(Callback<T>)>& start,
                Duration limit = Duration(30000)) {
  bool done = false;
  Result<T> out = fail(ErrorCode::Internal, "await: timed out");
  start([&](Result<T> r) {
    out = std::move(r);
    done = true;
  });
  loop.runUntil([&] { return done; }, limit);
  return out;
}

}  // namespace eni::testing
