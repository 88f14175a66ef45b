#include "tests/support/test_stack.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "agent/base/files.h"
#include "agent/base/json.h"
#include "agent/http/blocking_http_client.h"
#include "tests/support/eventually.h"

extern char** environ;

namespace eni::testing {
namespace {

std::vector<char*> cArgs(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> environmentWith(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& kv : extra) {
    const std::string key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
    env.push_back(kv);
  }
  return env;
}

pid_t spawnWithOutput(const std::vector<std::string>& argv,
                      const std::vector<std::string>& extraEnv, const std::string& outPath,
                      const std::string& errPath) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, outPath.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, errPath.c_str(),
                                   O_WRONLY | O_CREAT | (errPath == outPath ? O_APPEND : O_TRUNC),
                                   0600);
  const auto env = environmentWith(extraEnv);
  auto args = cArgs(argv);
  auto envp = cArgs(env);
  pid_t pid = -1;
  if (int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
      err != 0) {
    std::fprintf(stderr, "spawn %s: %s\n", args[0], std::strerror(err));
    pid = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

std::string tempPath(const char* tag) {
  static int counter = 0;
  return "/tmp/eni-test-" + std::to_string(getpid()) + "-" + tag + "-" + std::to_string(counter++);
}

}  // namespace

const TestStack& TestStack::get() {
  static const TestStack stack = [] {
    const char* dir = std::getenv("ENI_STACK_DIR");
    if (dir == nullptr) {
      std::fprintf(stderr,
                   "ENI_STACK_DIR is not set: run integration tests through ctest, which "
                   "starts the stack (tests/env/stack.py up)\n");
      std::abort();
    }
    auto text = readFile(std::string(dir) + "/stack.json");
    auto json = text ? parseJson(*text) : Result<Json::Value>(fail(text.error()));
    if (!json) {
      std::fprintf(stderr, "cannot read the test stack in %s: %s\n", dir,
                   json.error().message.c_str());
      std::abort();
    }
    const Json::Value& j = *json;
    TestStack s;
    s.dir = dir;
    s.apiserverUrl = stringField(j, "apiserver_url");
    s.adminKubeconfig = stringField(j, "admin_kubeconfig");
    s.agentKubeconfig = stringField(j, "agent_kubeconfig");
    s.kubectl = stringField(j, "kubectl");
    s.etcdEndpoint = stringField(j, "etcd_endpoint");
    s.motoEndpoint = stringField(j, "moto_endpoint");
    s.imdsEndpoint = stringField(j, "imds_endpoint");
    s.region = stringField(j, "region");
    s.instanceId = stringField(j, "instance_id");
    s.vpcId = stringField(j, "vpc_id");
    s.subnetA = stringField(j, "subnet_a");
    s.subnetB = stringField(j, "subnet_b");
    s.subnetC = stringField(j, "subnet_c");
    s.securityGroupId = stringField(j, "security_group_id");
    s.trunkEniId = stringField(j, "trunk_eni_id");
    s.ec2ProxyEndpoint = stringField(j, "ec2_proxy_endpoint");
    s.motoAuthEndpoint = stringField(j, "moto_auth_endpoint");
    s.motoAuthAccessKeyId = stringField(j, "moto_auth_access_key_id");
    s.motoAuthSecretAccessKey = stringField(j, "moto_auth_secret_access_key");
    s.authProxyEndpoint = stringField(j, "auth_proxy_endpoint");
    s.stallProxyControl = stringField(j, "stall_proxy_control");
    s.stallKubeconfig = stringField(j, "stall_kubeconfig");
    return s;
  }();
  return stack;
}

BranchEni makeBranchEni(CurlEc2Client& ec2, const std::string& subnet, std::vector<Tag> tags) {
  static int vlan = 0;
  const std::string trunk = TestStack::get().trunkEniId;
  CreateEniRequest request;
  request.subnetId = subnet;
  request.tags = std::move(tags);
  ++vlan;
  request.tags.push_back({"vpcresources.k8s.aws/trunk-eni-id", trunk});
  request.tags.push_back({"vpcresources.k8s.aws/vlan-id", std::to_string(vlan)});
  request.tags.push_back({"eks:eni:owner", "eks-vpc-resource-controller"});
  auto eni = ec2.createNetworkInterface(request);
  if (!eni) {
    std::fprintf(stderr, "makeBranchEni: %s\n", eni.error().describe().c_str());
    std::abort();
  }
  auto associated = ec2.call("AssociateTrunkInterface", {{"BranchInterfaceId", eni->id},
                                                         {"TrunkInterfaceId", trunk},
                                                         {"VlanId", std::to_string(vlan)}});
  if (!associated) {
    std::fprintf(stderr, "makeBranchEni: %s\n", associated.error().describe().c_str());
    std::abort();
  }
  return {eni->id, eni->privateIpAddress};
}

std::string podEniAnnotation(const std::string& eni, const std::string& ip) {
  return R"([{"eniId":")" + eni + R"(","privateIp":")" + ip + R"(","vlanId":1}])";
}

int TestStack::control(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"python3", std::string(ENI_SOURCE_DIR) + "/tests/env/stack.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--dir");
  argv.push_back(dir);
  return runProcess(argv).status;
}

std::string TestStack::controlHttp(const std::string& method, const std::string& url,
                                   const std::string& body) const {
  BlockingHttpClient http;
  HttpRequest request;
  request.method = method;
  request.url = url;
  request.body = body;
  // The fault proxy's stats carry its log of up to 10000 attempts, over 1 MiB when full.
  request.maxBodyBytes = std::size_t{64} << 20;
  if (!body.empty()) request.headers.push_back("Content-Type: application/json");
  auto response = http.perform(request);
  if (!response || response->status != 200) {
    const std::string why =
        response ? "HTTP " + std::to_string(response->status) + ": " + response->body.substr(0, 200)
                 : response.error().message;
    std::fprintf(stderr, "test stack control %s %s failed: %s\n", method.c_str(), url.c_str(),
                 why.c_str());
    std::abort();
  }
  return response->body;
}

int freePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::vector<std::string> agentEnv() {
  const auto& stack = TestStack::get();
  // One environment is one pod: agents started again with it (a restart after SIGKILL) take their
  // node's lease back at once, as a restarted container of the same pod does.
  static int pods = 0;
  const std::string pod =
      "eni-agent-test-" + std::to_string(getpid()) + "-" + std::to_string(++pods);
  return {"POD_NAME=" + pod,
          "ENI_AGENT_HEALTH_PROBE_BIND_ADDRESS=127.0.0.1:" + std::to_string(freePort()),
          "ENI_AGENT_METRICS_BIND_ADDRESS=127.0.0.1:" + std::to_string(freePort()),
          "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + stack.imdsEndpoint,
          "AWS_ENDPOINT_URL_EC2=" + stack.ec2ProxyEndpoint,
          "AWS_ENDPOINT_URL_STS=" + stack.motoEndpoint,
          "AWS_ACCESS_KEY_ID=AKIATESTING",
          "AWS_SECRET_ACCESS_KEY=testing",
          "AWS_REGION=" + stack.region};
}

ProcessResult runProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extraEnv) {
  const std::string out = tempPath("out");
  const std::string err = tempPath("err");
  ProcessResult result;
  const pid_t pid = spawnWithOutput(argv, extraEnv, out, err);
  if (pid > 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  result.out = readFile(out).value_or("");
  result.err = readFile(err).value_or("");
  unlink(out.c_str());
  unlink(err.c_str());
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& extraEnv)
    : logPath_(tempPath("bg")) {
  pid_ = spawnWithOutput(argv, extraEnv, logPath_, logPath_);
}

BackgroundProcess::~BackgroundProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  unlink(logPath_.c_str());
}

std::string BackgroundProcess::output() const { return readFile(logPath_).value_or(""); }

bool BackgroundProcess::waitForOutput(const std::string& text, int limitMs) const {
  return pollUntil([&] { return output().find(text) != std::string::npos; }, Duration(limitMs),
                   Duration(50));
}

bool BackgroundProcess::running() {
  if (pid_ <= 0 || status_ >= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return true;
}

void BackgroundProcess::signal(int signal) {
  if (running()) kill(pid_, signal);
}

int BackgroundProcess::terminate() {
  if (running()) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return status_;
}

}  // namespace eni::testing
