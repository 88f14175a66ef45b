#include "agent/config/command_line.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "agent/config/region.h"
#include "eni_agent_version.h"

namespace eni {
namespace {

using Setter = std::function<Result<void>(AgentOptions&, const std::string&)>;

struct FlagSpec {
  FlagSpec(std::string name_, std::string valueName_, std::string defaultText_, std::string help_,
           Setter set_, bool fromEniTagger_ = false, std::string noEffect_ = {})
      : name(std::move(name_)),
        valueName(std::move(valueName_)),
        defaultText(std::move(defaultText_)),
        help(std::move(help_)),
        set(std::move(set_)),
        fromEniTagger(fromEniTagger_),
        noEffect(std::move(noEffect_)) {}
  std::string name;       // without the leading dashes
  std::string valueName;  // empty for a boolean flag
  std::string defaultText;
  std::string help;
  Setter set;
  bool fromEniTagger = false;  // a k8s-eni-tagger flag: ENI_TAGGER_<NAME> is read after ENI_AGENT_
  std::string noEffect;        // k8s-eni-tagger's flag that means nothing here: why (help, log)
  /// aws-multi-eni-controller's variable of the same meaning, read after the ENI_AGENT_ one.
  std::string legacyEnv;
};

FlagSpec withLegacyEnv(FlagSpec spec, std::string variable) {
  spec.legacyEnv = std::move(variable);
  return spec;
}

tl::unexpected<Error> badValue(const std::string& value, const std::string& why) {
  return fail(ErrorCode::Invalid, "\"" + value + "\": " + why);
}

Result<bool> parseBool(const std::string& v) {
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return badValue(v, "want true or false");
}

Setter boolSetter(bool AgentOptions::*field) {
  return [field](AgentOptions& o, const std::string& v) -> Result<void> {
    auto b = parseBool(v);
    if (!b) return fail(b.error());
    o.*field = *b;
    return {};
  };
}

Setter stringSetter(std::string AgentOptions::*field, bool allowEmpty = true) {
  return [field, allowEmpty](AgentOptions& o, const std::string& v) -> Result<void> {
    if (!allowEmpty && v.empty()) return badValue(v, "must not be empty");
    o.*field = v;
    return {};
  };
}

bool isPortNumber(const std::string& port) {
  return !port.empty() && port.size() <= 5 &&
         port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) <= 65535;
}

/// "[host]:port", "0" (disabled), or a bare port as k8s-eni-tagger takes it ("8090": every
/// address, as ":8090"). The address as the servers take it.
Result<std::string> bindAddress(const std::string& v) {
  if (v == "0") return v;
  if (v.find(':') == std::string::npos) {
    if (isPortNumber(v)) return ":" + v;
    return badValue(v,
                    "want [host]:port, e.g. :8090, a port alone (every address), or 0 to disable");
  }
  if (!isPortNumber(v.substr(v.rfind(':') + 1)))
    return badValue(v, "the port must be a number from 0 to 65535");
  return v;
}

Setter bindAddressSetter(std::string AgentOptions::*field) {
  return [field](AgentOptions& o, const std::string& v) -> Result<void> {
    auto address = bindAddress(v);
    if (!address) return fail(address.error());
    o.*field = *address;
    return {};
  };
}

Result<std::int64_t> parseWholeNumber(const std::string& v, std::int64_t min, std::int64_t max) {
  char* end = nullptr;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == nullptr || *end != '\0' || n < min || n > max) {
    return badValue(
        v, "want a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return n;
}

Result<double> parseRate(const std::string& v, bool allowZero) {
  char* end = nullptr;
  const double n = std::strtod(v.c_str(), &end);
  if (v.empty() || end == nullptr || *end != '\0' || !std::isfinite(n) || n < 0 ||
      (n == 0 && !allowZero)) {
    return badValue(v, allowZero ? "want a number of 0 or more"
                                 : "want a number of requests per second greater than 0, e.g. 5");
  }
  return n;
}

Result<void> setSubnetIds(AgentOptions& o, const std::string& v) {
  std::vector<std::string> ids;
  std::size_t start = 0;
  while (start <= v.size()) {
    const auto comma = v.find(',', start);
    std::string id =
        v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.front()))) id.erase(0, 1);
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    // Empty entries are skipped, as k8s-eni-tagger skips them ("subnet-a," from a template).
    if (!id.empty() && (id.rfind("subnet-", 0) != 0 || id.size() == 7)) {
      return badValue(v,
                      "each entry must be a subnet ID such as subnet-0abc1234, got \"" + id + "\"");
    }
    if (!id.empty()) ids.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  o.subnetIds = std::move(ids);
  return {};
}

Result<void> setSharedEniTagging(AgentOptions& o, const std::string& v) {
  if (v == "refuse")
    o.sharedEniTagging = SharedEniTagging::Refuse;
  else if (v == "merge")
    o.sharedEniTagging = SharedEniTagging::Merge;
  else if (v == "any")
    o.sharedEniTagging = SharedEniTagging::Any;
  else
    return badValue(v, "want refuse, merge or any");
  o.sharedEniTaggingGiven = true;
  return {};
}

/// A Kubernetes namespace name (RFC 1123 label), or empty.
Setter namespaceSetter(std::string AgentOptions::*field) {
  return [field](AgentOptions& o, const std::string& v) -> Result<void> {
    const bool valid =
        v.size() <= 63 &&
        v.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos &&
        (v.empty() || (v.front() != '-' && v.back() != '-'));
    if (!valid) {
      return badValue(v, "want a namespace name: lower-case letters, digits and '-', at most 63");
    }
    o.*field = v;
    return {};
  };
}

std::vector<FlagSpec> whereAndWhoSpecs() {
  return {
      {"mode", "kubernetes|host", "kubernetes if in-cluster or a kubeconfig is set, else host",
       "which world the agent runs in",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         if (v == "kubernetes")
           o.mode = RunMode::Kubernetes;
         else if (v == "host")
           o.mode = RunMode::Host;
         else
           return badValue(v, "want kubernetes or host");
         return {};
       }},
      {"node-name", "NAME", "$NODE_NAME", "this node's name (downward API)",
       stringSetter(&AgentOptions::nodeName)},
      {"kubeconfig", "PATH", "$KUBECONFIG, else in-cluster", "Kubernetes client configuration",
       stringSetter(&AgentOptions::kubeconfig)},
      {"config", "PATH", "/etc/eni-agent/host.json", "host-mode desired state",
       stringSetter(&AgentOptions::configPath, false)},
      {"state-dir", "DIR", "/var/lib/eni-agent", "host-mode state file and lock",
       stringSetter(&AgentOptions::stateDir, false)},
      {"region", "REGION", "$AWS_REGION, else IMDS placement/region", "AWS region",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         if (!v.empty() && !isRegionName(v))
           return badValue(v, "want an AWS region name such as us-east-1 or eu-central-2");
         o.region = v;
         return {};
       }},
  };
}

std::vector<FlagSpec> taggerSpecs() {
  return {
      {"annotation-key", "KEY", "eni-tagger.io/tags", "pod annotation with the desired tags",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         if (v.empty() || v.find_first_of(" \t\n") != std::string::npos) {
           return badValue(v, "want an annotation key such as eni-tagger.io/tags");
         }
         o.annotationKey = v;
         return {};
       },
       true},
      {"tag-namespace", "PREFIX", "empty",
       "prefix tag keys: 'enable' or 'pod-namespace' gives <pod namespace>:Key; any other value is "
       "a literal prefix ('acme' gives acme:Key)",
       stringSetter(&AgentOptions::tagNamespace), true},
      {"subnet-ids", "ID,ID", "empty (all)",
       "tag only ENIs in these subnets; pods on others get ENIValidationFailed", setSubnetIds,
       true},
      {"shared-eni-tagging", "refuse|merge|any", "refuse",
       "ENIs several pods share: refuse (k8s-eni-tagger's rule: an ENI with more than one private "
       "IP or a prefix, a trunk, the primary ENI), merge (the tags the pods agree on; not the "
       "primary ENI), any (every ENI, no hash or agreement checks)",
       setSharedEniTagging},
      {"allow-shared-eni-tagging", "", "false", "k8s-eni-tagger's form of --shared-eni-tagging=any",
       boolSetter(&AgentOptions::allowSharedEniTagging), true},
      {"watch-namespace", "NAMESPACE", "empty (every namespace)",
       "tag only the pods of this namespace", namespaceSetter(&AgentOptions::watchNamespace), true},
      {"eni-tagger-cache-namespace", "NAMESPACE", "kube-system",
       "where k8s-eni-tagger's ConfigMap eni-tagger-cache is read once at start (never written); "
       "empty: not read",
       namespaceSetter(&AgentOptions::eniTaggerCacheNamespace)},
      {"dry-run", "", "false", "compute and log every AWS write, send none",
       boolSetter(&AgentOptions::dryRun), true},
  };
}

// A duration in Go's form, at least 1s (and at most `max`); with `zeroOff`, 0s too (off). `rule`
// says so when a value breaks it.
Setter durationSetter(Duration AgentOptions::*field, bool zeroOff, const char* rule,
                      Duration max = Duration::max()) {
  return [=](AgentOptions& o, const std::string& v) -> Result<void> {
    auto d = parseDuration(v);
    if (!d) return fail(d.error());
    const bool off = zeroOff && d->count() == 0;
    if (!off && (d->count() < 1000 || *d > max)) return badValue(v, rule);
    o.*field = *d;
    return {};
  };
}

Setter wholeNumberSetter(std::int64_t AgentOptions::*field, std::int64_t min, std::int64_t max) {
  return [=](AgentOptions& o, const std::string& v) -> Result<void> {
    auto n = parseWholeNumber(v, min, max);
    if (!n) return fail(n.error());
    o.*field = *n;
    return {};
  };
}

std::vector<FlagSpec> awsSpecs() {
  return {
      {"aws-rate-limit-qps", "QPS", "5", "client-side token bucket rate for EC2 calls, per node",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         auto qps = parseRate(v, false);
         if (!qps) return fail(qps.error());
         o.awsRateLimitQps = *qps;
         return {};
       },
       true},
      {"aws-rate-limit-burst", "N", "10", "client-side token bucket size for EC2 calls",
       wholeNumberSetter(&AgentOptions::awsRateLimitBurst, 1, 100000), true},
      {"resync-interval", "DURATION", "30m (with +-20% jitter)",
       "drift check: reapply missing owned tags, re-verify links",
       durationSetter(&AgentOptions::resyncInterval, false, "must be at least 1s")},
      {"watch-idle-timeout", "DURATION", "60s",
       "when every API-server watch was silent this long, check the connection (GET /version, "
       "answer within half of it, at most 15s) and reconnect if it does not answer; 0s: off",
       durationSetter(&AgentOptions::watchIdleTimeout, true, "must be 0s (off) or at least 1s")},
  };
}

std::vector<FlagSpec> nodeEniSpecs() {
  return {
      withLegacyEnv(
          {"nodeeni-check-interval", "DURATION", "5m (with +-20% jitter)",
           "NodeENI drift check: compare the attached ENIs with IMDS, read EC2 and repair only "
           "when they disagree (an ENI detached or deleted by hand); 0s: off",
           durationSetter(&AgentOptions::nodeEniCheckInterval, true, "must be 0s or at least 1s")},
          "RECONCILE_PERIOD"),
      withLegacyEnv(
          {"release-concurrency", "N", "3", "NodeENI ENIs released (detach, wait, delete) at once",
           wholeNumberSetter(&AgentOptions::releaseConcurrency, 1, 64)},
          "MAX_CONCURRENT_ENI_CLEANUP"),
      withLegacyEnv({"detach-timeout", "DURATION", "30s",
                     "how long a release waits for a detached ENI to become available before the "
                     "next pass takes it up again",
                     durationSetter(&AgentOptions::detachTimeout, false, "must be from 1s to 1h",
                                    std::chrono::hours(1))},
                    "DETACHMENT_TIMEOUT"),
      withLegacyEnv(
          {"max-cleanup-duration", "DURATION", "30m",
           "a NodeENI being deleted whose cleanup has not completed this long after it started "
           "loses its finalizer, with a CleanupTimeout event naming the nodes left behind",
           durationSetter(&AgentOptions::maxCleanupDuration, false, "must be at least 1s")},
          "MAX_CLEANUP_DURATION"),
      {"dpdk-sysfs-root", "PATH", "/sys",
       "sysfs, where the devices of NodeENIs with enableDPDK are bound to their DPDK driver "
       "(needs root and /sys writable); empty: such NodeENIs are refused",
       stringSetter(&AgentOptions::dpdkSysfsRoot)},
      {"sriov-config-path", "PATH", "/etc/pcidp/config.json",
       "the SR-IOV network device plugin's config, where devices bound for DPDK are listed "
       "(merged with what others wrote there)",
       stringSetter(&AgentOptions::sriovConfigPath, false)},
      {"enable-tagger", "", "true", "tag pod ENIs from annotations",
       boolSetter(&AgentOptions::enableTagger)},
      {"enable-eni-manager", "", "true", "create and attach NodeENI interfaces",
       boolSetter(&AgentOptions::enableEniManager)},
      {"manage-links", "", "true", "bring managed interfaces up and set their MTU",
       boolSetter(&AgentOptions::manageLinks)},
      {"link-netns", "PATH", "empty (own namespace)",
       "network namespace whose links are managed (needs CAP_SYS_ADMIN)",
       stringSetter(&AgentOptions::linkNetns)},
  };
}

std::vector<FlagSpec> processSpecs() {
  return {
      {"run-as-user", "UID[:GID]", "empty (keep the user it started as)",
       "drop to this user and group once netlink is open, keeping only CAP_NET_ADMIN",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         if (v.empty()) {
           o.runAsUser.reset();
           return {};
         }
         auto user = parseRunAsUser(v);
         if (!user) return fail(user.error());
         o.runAsUser = *user;
         return {};
       }},
      {"metrics-bind-address", "ADDR", ":8090",
       "Prometheus /metrics: [host]:port, a port alone (every address); 0 disables",
       bindAddressSetter(&AgentOptions::metricsBindAddress), true},
      {"health-probe-bind-address", "ADDR", "127.0.0.1:8081",
       "/healthz and /readyz (unauthenticated: loopback by default; a port alone is every "
       "address); 0 disables",
       bindAddressSetter(&AgentOptions::healthProbeBindAddress), true},
      {"log-format", "json|text", "json (text on a TTY)", "structured log format",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         if (!logging::parseFormat(v, o.logFormat)) return badValue(v, "want json or text");
         return {};
       }},
      {"log-level", "LEVEL", "info", "debug, info, warn or error",
       [](AgentOptions& o, const std::string& v) -> Result<void> {
         if (!logging::parseLevel(v, o.logLevel)) {
           return badValue(v, "want debug, info, warn or error");
         }
         return {};
       }},
  };
}

/// What a k8s-eni-tagger flag that means nothing here takes: its value is checked as that tool
/// checked it, then only noted.
enum class ValueKind { Bool, Count, Rate, Duration, Address };

Setter noEffectSetter(const std::string& name, ValueKind kind) {
  return [name, kind](AgentOptions& o, const std::string& v) -> Result<void> {
    Result<void> ok;
    switch (kind) {
      case ValueKind::Bool:
        if (auto b = parseBool(v); !b) ok = fail(b.error());
        break;
      case ValueKind::Count:
        if (auto n = parseWholeNumber(v, 0, 1000000000); !n) ok = fail(n.error());
        break;
      case ValueKind::Rate:
        if (auto r = parseRate(v, true); !r) ok = fail(r.error());
        break;
      case ValueKind::Duration:
        if (auto d = parseDuration(v); !d) ok = fail(d.error());
        break;
      case ValueKind::Address:
        if (auto a = bindAddress(v); !a) ok = fail(a.error());
        break;
    }
    if (!ok) return ok;
    auto& seen = o.noEffectFlags;
    if (std::find(seen.begin(), seen.end(), name) == seen.end()) seen.push_back(name);
    return {};
  };
}

FlagSpec noEffect(const std::string& name, const std::string& valueName, ValueKind kind,
                  const std::string& why) {
  return {name, valueName, "-", "", noEffectSetter(name, kind), true, why};
}

std::vector<FlagSpec> eniTaggerNoEffectSpecs() {
  const std::string noConfigMap =
      "eni-agent writes no ConfigMap: its cache is its node state (the eni-agent.io/state "
      "annotation), written by itself, debounced";
  const std::string coalesced =
      "pod changes are coalesced into passes (a 20 ms window, one pass at a time per node), so a "
      "pod that changes often costs at most one pass per window; EC2 calls are limited by "
      "--aws-rate-limit-qps and --aws-rate-limit-burst";
  return {
      noEffect("leader-elect", "", ValueKind::Bool,
               "every node runs its own agent for its own pods, one per node by the node's "
               "Lease; there is no leader to elect"),
      noEffect("max-concurrent-reconciles", "N", ValueKind::Count,
               "the agent tags its own node's pods only, in passes that take every changed pod "
               "at once, one pass at a time"),
      noEffect("enable-eni-cache", "", ValueKind::Bool,
               "the node state always caches each pod's ENI: it is also eni-agent's record of "
               "what it owns, so it cannot be turned off"),
      noEffect("enable-cache-configmap", "", ValueKind::Bool,
               noConfigMap + "; k8s-eni-tagger's eni-tagger-cache is read once at start when it "
                             "exists (--eni-tagger-cache-namespace)"),
      noEffect("cache-batch-interval", "DURATION", ValueKind::Duration, noConfigMap),
      noEffect("cache-batch-size", "N", ValueKind::Count, noConfigMap),
      noEffect("pprof-bind-address", "ADDR", ValueKind::Address,
               "eni-agent is not a Go program and serves no pprof endpoint"),
      noEffect("pod-rate-limit-qps", "QPS", ValueKind::Rate, coalesced),
      noEffect("pod-rate-limit-burst", "N", ValueKind::Count, coalesced),
      noEffect("rate-limiter-cleanup-interval", "DURATION", ValueKind::Duration,
               "eni-agent keeps no per-pod rate limiters to clean up"),
      noEffect("aws-health-max-successes", "N", ValueKind::Count,
               "/readyz follows the answers to the EC2 calls the agent makes, and while AWS "
               "refuses its credentials one cheap read a minute; there is no separate health "
               "call to cache"),
  };
}

const std::vector<FlagSpec>& flagSpecs() {
  static const std::vector<FlagSpec> specs = [] {
    std::vector<FlagSpec> all;
    for (auto group : {whereAndWhoSpecs(), taggerSpecs(), awsSpecs(), nodeEniSpecs(),
                       processSpecs(), eniTaggerNoEffectSpecs()}) {
      all.insert(all.end(), group.begin(), group.end());
    }
    return all;
  }();
  return specs;
}

std::string envName(const std::string& flag, const std::string& prefix = "ENI_AGENT_") {
  std::string out = prefix;
  for (char c : flag)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

const FlagSpec* findFlag(const std::string& name) {
  for (const auto& spec : flagSpecs()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

Result<CommandKind> commandNamed(const std::string& word) {
  if (word == "run") return CommandKind::Run;
  if (word == "status") return CommandKind::Status;
  if (word == "validate-tags") return CommandKind::ValidateTags;
  if (word == "version") return CommandKind::Version;
  if (word == "help") return CommandKind::Help;
  return fail(ErrorCode::Invalid,
              "unknown command \"" + word + "\"; commands are run, status, validate-tags, version");
}

/// ENI_AGENT_<FLAG>, else (for k8s-eni-tagger's flags) ENI_TAGGER_<FLAG>, else (for
/// aws-multi-eni-controller's) its variable; flags parsed afterwards win over all.
Result<void> applyEnvironment(AgentOptions& o, const EnvLookup& env) {
  for (const auto& spec : flagSpecs()) {
    std::string var = envName(spec.name);
    auto value = env(var);
    if (!value && spec.fromEniTagger) {
      var = envName(spec.name, "ENI_TAGGER_");
      value = env(var);
    }
    if (!value && !spec.legacyEnv.empty()) {
      var = spec.legacyEnv;
      value = env(var);
    }
    if (!value) continue;
    if (auto ok = spec.set(o, *value); !ok) {
      return fail(ErrorCode::Invalid,
                  "invalid value in " + var + " for --" + spec.name + ": " + ok.error().message);
    }
  }
  return {};
}

/// aws-multi-eni-controller's DEFAULT_DELETE_ON_TERMINATION, in Go's strconv.ParseBool forms.
/// No flag: it only makes the ENI manager log NodeENIs that disagree (the spec wins here).
Result<void> applyLegacyDeleteOnTermination(AgentOptions& o, const EnvLookup& env) {
  auto value = env("DEFAULT_DELETE_ON_TERMINATION");
  if (!value || value->empty()) return {};
  for (const char* yes : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (*value == yes) o.legacyDefaultDeleteOnTermination = true;
  }
  for (const char* no : {"0", "f", "F", "FALSE", "false", "False"}) {
    if (*value == no) o.legacyDefaultDeleteOnTermination = false;
  }
  if (o.legacyDefaultDeleteOnTermination) return {};
  return fail(ErrorCode::Invalid, "invalid value in DEFAULT_DELETE_ON_TERMINATION: \"" + *value +
                                      "\": want true or false");
}

/// The state of the walk over argv.
struct ArgWalk {
  explicit ArgWalk(const std::vector<std::string>& args_) : args(args_) {}
  const std::vector<std::string>& args;
  std::size_t i = 0;
  bool sawCommand = false;
  bool done = false;  // --help or --version: nothing after it matters
  std::vector<std::string> positional;
};

Result<void> applyOutputFlag(Command& command, ArgWalk& walk, std::optional<std::string> value) {
  if (!value) {
    if (walk.i + 1 >= walk.args.size())
      return fail(ErrorCode::Invalid, "flag --output needs a value: table or json");
    value = walk.args[++walk.i];
  }
  if (*value != "table" && *value != "json") {
    return fail(ErrorCode::Invalid,
                "invalid value for --output: \"" + *value + "\": want table or json");
  }
  command.statusOutput = *value;
  return {};
}

/// --version, also k8s-eni-tagger's --version=true; --version=false is no request.
Result<void> applyVersionFlag(Command& command, ArgWalk& walk,
                              const std::optional<std::string>& value) {
  auto wanted = value ? parseBool(*value) : Result<bool>(true);
  if (!wanted)
    return fail(ErrorCode::Invalid, "invalid value for --version: " + wanted.error().message);
  if (*wanted) {
    command.kind = CommandKind::Version;
    walk.done = true;
  }
  return {};
}

Result<void> applyFlagArg(Command& command, ArgWalk& walk) {
  std::string name = walk.args[walk.i].substr(2);
  std::optional<std::string> value;
  if (const auto eq = name.find('='); eq != std::string::npos) {
    value = name.substr(eq + 1);
    name.resize(eq);
  }
  if (name == "output") return applyOutputFlag(command, walk, value);
  if (name == "version") return applyVersionFlag(command, walk, value);
  const FlagSpec* spec = findFlag(name);
  if (spec == nullptr) {
    return fail(ErrorCode::Invalid,
                "unknown flag --" + name + "; run 'eni-agent --help' for the list");
  }
  if (!value) {
    if (spec->valueName.empty()) {
      value = "true";
    } else if (walk.i + 1 < walk.args.size()) {
      value = walk.args[++walk.i];
    } else {
      return fail(ErrorCode::Invalid,
                  "flag --" + name + " needs a value (" + spec->valueName + ")");
    }
  }
  if (auto ok = spec->set(command.options, *value); !ok)
    return fail(ErrorCode::Invalid, "invalid value for --" + name + ": " + ok.error().message);
  return {};
}

Result<void> applyArg(Command& command, ArgWalk& walk) {
  const std::string& arg = walk.args[walk.i];
  if (arg == "-h" || arg == "--help") {
    command.kind = CommandKind::Help;
    walk.done = true;
    return {};
  }
  if (arg == "--") {
    walk.positional.insert(walk.positional.end(), walk.args.begin() + static_cast<long>(walk.i) + 1,
                           walk.args.end());
    walk.i = walk.args.size();
    return {};
  }
  if (arg.rfind("--", 0) == 0) return applyFlagArg(command, walk);
  if (arg.size() > 1 && arg[0] == '-') {
    return fail(ErrorCode::Invalid,
                "unknown flag " + arg + "; flags are spelled --name, run 'eni-agent --help'");
  }
  if (!walk.sawCommand && walk.positional.empty()) {
    auto kind = commandNamed(arg);
    if (!kind) return fail(kind.error());
    command.kind = *kind;
    walk.sawCommand = true;
    return {};
  }
  walk.positional.push_back(arg);
  return {};
}

Result<void> checkArguments(Command& command, std::vector<std::string> positional) {
  if (command.kind == CommandKind::ValidateTags) {
    if (positional.size() != 1) {
      return fail(ErrorCode::Invalid,
                  "validate-tags takes exactly one argument, the annotation value, e.g. "
                  "eni-agent validate-tags '{\"Team\":\"Platform\"}'");
    }
  } else if (command.kind != CommandKind::Help && !positional.empty()) {
    return fail(ErrorCode::Invalid, "unexpected argument \"" + positional.front() + "\"");
  }
  command.arguments = std::move(positional);
  return {};
}

/// --allow-shared-eni-tagging is k8s-eni-tagger's name for --shared-eni-tagging=any.
Result<void> foldSharedEniTagging(AgentOptions& o) {
  if (!o.allowSharedEniTagging) return {};
  if (o.sharedEniTaggingGiven && o.sharedEniTagging != SharedEniTagging::Any) {
    return fail(ErrorCode::Invalid,
                "--allow-shared-eni-tagging means --shared-eni-tagging=any, but "
                "--shared-eni-tagging is " +
                    std::string(toString(o.sharedEniTagging)) + "; keep one of them");
  }
  o.sharedEniTagging = SharedEniTagging::Any;
  return {};
}

/// DESIGN.md's derived defaults: $NODE_NAME, $KUBECONFIG, $AWS_REGION and the mode.
Result<void> applyDerivedDefaults(Command& command, const EnvLookup& env) {
  AgentOptions& o = command.options;
  if (o.nodeName.empty()) o.nodeName = env("NODE_NAME").value_or("");
  if (o.kubeconfig.empty()) o.kubeconfig = env("KUBECONFIG").value_or("");
  if (o.region.empty()) {
    const char* variable = env("AWS_REGION") ? "AWS_REGION" : "AWS_DEFAULT_REGION";
    o.region = env(variable).value_or("");
    const bool usesRegion = command.kind == CommandKind::Run || command.kind == CommandKind::Status;
    if (auto valid = checkRegionName(o.region, variable);
        usesRegion && !o.region.empty() && !valid) {
      return fail(ErrorCode::Invalid, valid.error().message +
                                          "; set it to the node's region or "
                                          "unset it to read IMDS");
    }
  }
  if (o.mode == RunMode::Auto) {
    const bool inCluster = env("KUBERNETES_SERVICE_HOST").has_value();
    o.mode = (inCluster || !o.kubeconfig.empty()) ? RunMode::Kubernetes : RunMode::Host;
  }
  return {};
}

std::string helpLine(const FlagSpec& spec) {
  std::string left = "  --" + spec.name;
  if (!spec.valueName.empty()) left += " " + spec.valueName;
  if (left.size() < 42)
    left.resize(42, ' ');
  else
    left += "\n" + std::string(42, ' ');
  std::string env = envName(spec.name);
  if (spec.fromEniTagger) env += " or " + envName(spec.name, "ENI_TAGGER_");
  if (!spec.legacyEnv.empty()) env += " or " + spec.legacyEnv;
  return left + spec.help + "\n" + std::string(42, ' ') + "default: " + spec.defaultText +
         "; env " + env + "\n";
}

}  // namespace

std::string_view toString(SharedEniTagging mode) {
  switch (mode) {
    case SharedEniTagging::Refuse:
      return "refuse";
    case SharedEniTagging::Merge:
      return "merge";
    case SharedEniTagging::Any:
      return "any";
  }
  return "refuse";
}

std::vector<std::string> noEffectLines(const AgentOptions& options) {
  std::vector<std::string> lines;
  for (const auto& name : options.noEffectFlags) {
    const FlagSpec* spec = findFlag(name);
    if (spec == nullptr || spec->noEffect.empty()) continue;
    lines.push_back("flag --" + name + " of k8s-eni-tagger has no effect here, because " +
                    spec->noEffect);
  }
  return lines;
}

Result<Duration> parseDuration(const std::string& text) {
  if (text.empty()) return badValue(text, "want a duration such as 30m, 90s or 1h30m");
  std::int64_t totalMs = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t digits = i;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    if (digits == i || digits - i > 9) {
      return badValue(text, "want a duration such as 30m, 90s or 1h30m");
    }
    const std::int64_t n = std::stoll(text.substr(i, digits - i));
    std::size_t unitEnd = digits;
    while (unitEnd < text.size() && std::isalpha(static_cast<unsigned char>(text[unitEnd])))
      ++unitEnd;
    const std::string unit = text.substr(digits, unitEnd - digits);
    if (unit.empty() && digits < text.size() && text[digits] == '.') {
      return badValue(text, "fractions are not taken; write whole units such as 1h30m or 1500ms");
    }
    std::int64_t scale = 0;
    if (unit == "ms")
      scale = 1;
    else if (unit == "s")
      scale = 1000;
    else if (unit == "m")
      scale = 60'000;
    else if (unit == "h")
      scale = 3'600'000;
    else
      return badValue(text, "unknown unit \"" + unit + "\"; use ms, s, m or h");
    totalMs += n * scale;
    i = unitEnd;
  }
  return Duration(totalMs);
}

Result<Command> parseCommandLine(const std::vector<std::string>& args, const EnvLookup& env,
                                 bool stdoutIsTty) {
  Command command;
  command.options.logFormat = stdoutIsTty ? LogFormat::Text : LogFormat::Json;
  if (auto ok = applyEnvironment(command.options, env); !ok) return fail(ok.error());
  if (auto ok = applyLegacyDeleteOnTermination(command.options, env); !ok) return fail(ok.error());
  ArgWalk walk(args);
  for (; walk.i < args.size() && !walk.done; ++walk.i) {
    if (auto ok = applyArg(command, walk); !ok) return fail(ok.error());
  }
  if (walk.done) return command;  // --help, --version
  if (auto ok = checkArguments(command, std::move(walk.positional)); !ok) return fail(ok.error());
  if (auto ok = foldSharedEniTagging(command.options); !ok) return fail(ok.error());
  if (auto ok = applyDerivedDefaults(command, env); !ok) return fail(ok.error());
  return command;
}

std::string versionText() {
  return std::string("eni-agent ") + kEniAgentVersion + " (" + kEniAgentGitCommit + ")\n";
}

std::string helpText() {
  std::string out =
      "eni-agent: tags the ENIs behind this node's pods and manages its NodeENI interfaces.\n"
      "\n"
      "Usage:\n"
      "  eni-agent [run] [flags]                      run the daemon\n"
      "  eni-agent status [--output table|json]       print this node's ENIs, tags and links\n"
      "  eni-agent validate-tags '<annotation value>' check a tags annotation before deploying it\n"
      "  eni-agent version                            print the version (also --version)\n"
      "\n"
      "Flags (each can also be set as ENI_AGENT_<FLAG_IN_UPPER_SNAKE>; the flag wins):\n";
  for (const auto& spec : flagSpecs()) {
    if (spec.noEffect.empty()) out += helpLine(spec);
  }
  out +=
      "\n"
      "Accepted for k8s-eni-tagger's Deployment arguments, with no effect (a log line at start "
      "says why):\n ";
  std::size_t column = 1;
  for (const auto& spec : flagSpecs()) {
    if (spec.noEffect.empty()) continue;
    const std::string word = " --" + spec.name;
    if (column + word.size() > 100) {
      out += "\n ";
      column = 1;
    }
    out += word;
    column += word.size();
  }
  out +=
      "\nk8s-eni-tagger's flags are also read from ENI_TAGGER_<FLAG_IN_UPPER_SNAKE>, after "
      "ENI_AGENT_<...>.\n"
      "aws-multi-eni-controller's DEFAULT_DELETE_ON_TERMINATION is read, not obeyed: the NodeENI's "
      "spec.deleteOnTermination wins, and a NodeENI that disagrees is logged once.\n"
      "\n"
      "AWS settings follow the AWS SDK: AWS_REGION, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/\n"
      "AWS_SESSION_TOKEN, AWS_ROLE_ARN+AWS_WEB_IDENTITY_TOKEN_FILE, "
      "AWS_CONTAINER_CREDENTIALS_FULL_URI,\n"
      "AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, "
      "AWS_EC2_METADATA_SERVICE_ENDPOINT,\n"
      "AWS_EC2_METADATA_DISABLED.\n"
      "Exit status: 0 success, 1 failure, 2 a usage error (unknown flag or bad value).\n";
  return out;
}

}  // namespace eni
