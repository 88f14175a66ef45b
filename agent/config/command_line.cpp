#include "agent/config/command_line.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "agent/config/region.h"
#include "eni_agent_version.h"

namespace eni {
namespace {

using Setter = std::function<Result<void>(AgentOptions&, const std::string&)>;

struct FlagSpec {
  std::string name;       // without the leading dashes
  std::string valueName;  // empty for a boolean flag
  std::string defaultText;
  std::string help;
  Setter set;
};

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

Result<void> checkBindAddress(const std::string& v) {
  if (v == "0") return {};  // disabled
  const auto colon = v.rfind(':');
  if (colon == std::string::npos)
    return badValue(v, "want [host]:port, e.g. :8090, or 0 to disable");
  const std::string port = v.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    return badValue(v, "the port must be a number from 0 to 65535");
  }
  return {};
}

Result<void> setMode(AgentOptions& o, const std::string& v) {
  if (v == "kubernetes")
    o.mode = RunMode::Kubernetes;
  else if (v == "host")
    o.mode = RunMode::Host;
  else
    return badValue(v, "want kubernetes or host");
  return {};
}

Result<void> setRegion(AgentOptions& o, const std::string& v) {
  if (!v.empty() && !isRegionName(v))
    return badValue(v, "want an AWS region name such as us-east-1 or eu-central-2");
  o.region = v;
  return {};
}

Result<void> setAnnotationKey(AgentOptions& o, const std::string& v) {
  if (v.empty() || v.find_first_of(" \t\n") != std::string::npos) {
    return badValue(v, "want an annotation key such as eni-tagger.io/tags");
  }
  o.annotationKey = v;
  return {};
}

std::string trimSpaces(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

Result<void> setSubnetIds(AgentOptions& o, const std::string& v) {
  std::vector<std::string> ids;
  std::size_t start = 0;
  while (start <= v.size() && !v.empty()) {
    const auto comma = v.find(',', start);
    std::string id =
        trimSpaces(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (id.rfind("subnet-", 0) != 0 || id.size() == 7) {
      return badValue(v,
                      "each entry must be a subnet ID such as subnet-0abc1234, got \"" + id + "\"");
    }
    ids.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  o.subnetIds = std::move(ids);
  return {};
}

Result<void> setRateLimitQps(AgentOptions& o, const std::string& v) {
  char* end = nullptr;
  const double qps = std::strtod(v.c_str(), &end);
  if (v.empty() || end == nullptr || *end != '\0' || !std::isfinite(qps) || qps <= 0) {
    return badValue(v, "want a number of requests per second greater than 0, e.g. 5");
  }
  o.awsRateLimitQps = qps;
  return {};
}

Result<void> setRateLimitBurst(AgentOptions& o, const std::string& v) {
  char* end = nullptr;
  const long long burst = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == nullptr || *end != '\0' || burst < 1 || burst > 100000) {
    return badValue(v, "want a whole number from 1 to 100000, e.g. 10");
  }
  o.awsRateLimitBurst = burst;
  return {};
}

Result<void> setResyncInterval(AgentOptions& o, const std::string& v) {
  auto d = parseDuration(v);
  if (!d) return fail(d.error());
  if (d->count() < 1000) return badValue(v, "must be at least 1s");
  o.resyncInterval = *d;
  return {};
}

Result<void> setWatchIdleTimeout(AgentOptions& o, const std::string& v) {
  auto d = parseDuration(v);
  if (!d) return fail(d.error());
  if (d->count() != 0 && d->count() < 1000) return badValue(v, "must be 0s (off) or at least 1s");
  o.watchIdleTimeout = *d;
  return {};
}

Result<void> setRunAsUser(AgentOptions& o, const std::string& v) {
  if (v.empty()) {
    o.runAsUser.reset();
    return {};
  }
  auto user = parseRunAsUser(v);
  if (!user) return fail(user.error());
  o.runAsUser = *user;
  return {};
}

Setter bindAddressSetter(std::string AgentOptions::*field) {
  return [field](AgentOptions& o, const std::string& v) -> Result<void> {
    if (auto ok = checkBindAddress(v); !ok) return ok;
    o.*field = v;
    return {};
  };
}

Result<void> setLogFormat(AgentOptions& o, const std::string& v) {
  if (!logging::parseFormat(v, o.logFormat)) return badValue(v, "want json or text");
  return {};
}

Result<void> setLogLevel(AgentOptions& o, const std::string& v) {
  if (!logging::parseLevel(v, o.logLevel)) return badValue(v, "want debug, info, warn or error");
  return {};
}

// Where the agent runs and what it tags, in the order --help lists them.
std::vector<FlagSpec> placementAndTaggingFlags() {
  return {
      {"mode", "kubernetes|host", "kubernetes if in-cluster or a kubeconfig is set, else host",
       "which world the agent runs in", setMode},
      {"node-name", "NAME", "$NODE_NAME", "this node's name (downward API)",
       stringSetter(&AgentOptions::nodeName)},
      {"kubeconfig", "PATH", "$KUBECONFIG, else in-cluster", "Kubernetes client configuration",
       stringSetter(&AgentOptions::kubeconfig)},
      {"config", "PATH", "/etc/eni-agent/host.json", "host-mode desired state",
       stringSetter(&AgentOptions::configPath, false)},
      {"state-dir", "DIR", "/var/lib/eni-agent", "host-mode state file and lock",
       stringSetter(&AgentOptions::stateDir, false)},
      {"region", "REGION", "$AWS_REGION, else IMDS placement/region", "AWS region", setRegion},
      {"annotation-key", "KEY", "eni-tagger.io/tags", "pod annotation with the desired tags",
       setAnnotationKey},
      {"tag-namespace", "PREFIX", "empty",
       "prefix tag keys: a literal 'acme' gives acme:Key; 'pod-namespace' gives <ns>:Key",
       stringSetter(&AgentOptions::tagNamespace)},
      {"subnet-ids", "ID,ID", "empty (all)", "only tag ENIs in these subnets", setSubnetIds},
      {"allow-shared-eni-tagging", "", "false", "tag ENIs that several pods share",
       boolSetter(&AgentOptions::allowSharedEniTagging)},
      {"dry-run", "", "false", "compute and log every AWS write, send none",
       boolSetter(&AgentOptions::dryRun)},
  };
}

// How the agent paces and checks its peers, what it runs, and what it serves and logs.
std::vector<FlagSpec> operationFlags() {
  return {
      {"aws-rate-limit-qps", "QPS", "5", "client-side token bucket rate for EC2 calls, per node",
       setRateLimitQps},
      {"aws-rate-limit-burst", "N", "10", "client-side token bucket size for EC2 calls",
       setRateLimitBurst},
      {"resync-interval", "DURATION", "30m (with +-20% jitter)",
       "drift check: reapply missing owned tags, re-verify links", setResyncInterval},
      {"watch-idle-timeout", "DURATION", "60s",
       "when every API-server watch was silent this long, check the connection (GET /version, "
       "answer within half of it, at most 15s) and reconnect if it does not answer; 0s: off",
       setWatchIdleTimeout},
      {"enable-tagger", "", "true", "tag pod ENIs from annotations",
       boolSetter(&AgentOptions::enableTagger)},
      {"enable-eni-manager", "", "true", "create and attach NodeENI interfaces",
       boolSetter(&AgentOptions::enableEniManager)},
      {"manage-links", "", "true", "bring managed interfaces up and set their MTU",
       boolSetter(&AgentOptions::manageLinks)},
      {"link-netns", "PATH", "empty (own namespace)",
       "network namespace whose links are managed (needs CAP_SYS_ADMIN)",
       stringSetter(&AgentOptions::linkNetns)},
      {"run-as-user", "UID[:GID]", "empty (keep the user it started as)",
       "drop to this user and group once netlink is open, keeping only CAP_NET_ADMIN",
       setRunAsUser},
      {"metrics-bind-address", "ADDR", ":8090", "Prometheus /metrics; 0 disables",
       bindAddressSetter(&AgentOptions::metricsBindAddress)},
      {"health-probe-bind-address", "ADDR", "127.0.0.1:8081",
       "/healthz and /readyz (unauthenticated: loopback by default); 0 disables",
       bindAddressSetter(&AgentOptions::healthProbeBindAddress)},
      {"log-format", "json|text", "json (text on a TTY)", "structured log format", setLogFormat},
      {"log-level", "LEVEL", "info", "debug, info, warn or error", setLogLevel},
  };
}

const std::vector<FlagSpec>& flagSpecs() {
  static const std::vector<FlagSpec> specs = [] {
    std::vector<FlagSpec> all = placementAndTaggingFlags();
    for (auto& spec : operationFlags()) all.push_back(std::move(spec));
    return all;
  }();
  return specs;
}

std::string envName(const std::string& flag) {
  std::string out = "ENI_AGENT_";
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

}  // namespace

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

namespace {

// Environment first, so that flags parsed afterwards win.
Result<void> applyEnvironment(AgentOptions& o, const EnvLookup& env) {
  for (const auto& spec : flagSpecs()) {
    const std::string var = envName(spec.name);
    if (auto value = env(var)) {
      if (auto ok = spec.set(o, *value); !ok) {
        return fail(ErrorCode::Invalid,
                    "invalid value in " + var + " for --" + spec.name + ": " + ok.error().message);
      }
    }
  }
  return {};
}

// `eni-agent status --output table|json`: the one flag that is not an agent option.
Result<void> setStatusOutput(Command& command, const std::optional<std::string>& value) {
  if (!value) return fail(ErrorCode::Invalid, "flag --output needs a value: table or json");
  if (*value != "table" && *value != "json") {
    return fail(ErrorCode::Invalid,
                "invalid value for --output: \"" + *value + "\": want table or json");
  }
  command.statusOutput = *value;
  return {};
}

// The words of a command line, consumed from the front.
class ArgCursor {
 public:
  explicit ArgCursor(const std::vector<std::string>& args) : args_(args) {}
  bool done() const { return next_ >= args_.size(); }
  const std::string& take() { return args_[next_++]; }
  std::vector<std::string> rest() {
    std::vector<std::string> out(args_.begin() + static_cast<long>(next_), args_.end());
    next_ = args_.size();
    return out;
  }

 private:
  const std::vector<std::string>& args_;
  std::size_t next_ = 0;
};

// One --flag[=value]; a value that is not attached is the next word.
Result<void> parseFlag(const std::string& arg, ArgCursor& cursor, Command& command) {
  std::string name = arg.substr(2);
  std::optional<std::string> value;
  if (const auto eq = name.find('='); eq != std::string::npos) {
    value = name.substr(eq + 1);
    name.resize(eq);
  }
  if (name == "output") {
    if (!value && !cursor.done()) value = cursor.take();
    return setStatusOutput(command, value);
  }
  const FlagSpec* spec = findFlag(name);
  if (spec == nullptr) {
    return fail(ErrorCode::Invalid,
                "unknown flag --" + name + "; run 'eni-agent --help' for the list");
  }
  if (!value) {
    if (spec->valueName.empty()) {
      value = "true";
    } else if (!cursor.done()) {
      value = cursor.take();
    } else {
      return fail(ErrorCode::Invalid,
                  "flag --" + name + " needs a value (" + spec->valueName + ")");
    }
  }
  if (auto ok = spec->set(command.options, *value); !ok) {
    return fail(ErrorCode::Invalid, "invalid value for --" + name + ": " + ok.error().message);
  }
  return {};
}

struct Words {
  std::vector<std::string> positional;  // the command's arguments
  bool stopped = false;                 // by --help or --version: nothing else applies
};

// The words after the program name: flags, the command, its arguments.
Result<Words> parseWords(const std::vector<std::string>& args, Command& command) {
  bool sawCommand = false;
  Words words;
  std::vector<std::string>& positional = words.positional;
  ArgCursor cursor(args);
  while (!cursor.done()) {
    const std::string& arg = cursor.take();
    if (arg == "-h" || arg == "--help" || arg == "--version") {
      command.kind = arg == "--version" ? CommandKind::Version : CommandKind::Help;
      words.stopped = true;
      return words;
    }
    if (arg == "--") {
      for (auto& word : cursor.rest()) positional.push_back(std::move(word));
      break;
    }
    if (arg.rfind("--", 0) == 0) {
      if (auto ok = parseFlag(arg, cursor, command); !ok) return fail(ok.error());
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      return fail(ErrorCode::Invalid,
                  "unknown flag " + arg + "; flags are spelled --name, run 'eni-agent --help'");
    }
    if (!sawCommand && positional.empty()) {
      auto kind = commandNamed(arg);
      if (!kind) return fail(kind.error());
      command.kind = *kind;
      sawCommand = true;
      continue;
    }
    positional.push_back(arg);
  }
  return words;
}

Result<void> checkArguments(const Command& command, const std::vector<std::string>& positional) {
  if (command.kind == CommandKind::ValidateTags) {
    if (positional.size() != 1) {
      return fail(ErrorCode::Invalid,
                  "validate-tags takes exactly one argument, the annotation value, e.g. "
                  "eni-agent validate-tags '{\"Team\":\"Platform\"}'");
    }
  } else if (command.kind != CommandKind::Help && !positional.empty()) {
    return fail(ErrorCode::Invalid, "unexpected argument \"" + positional.front() + "\"");
  }
  return {};
}

// What neither a flag nor ENI_AGENT_* set: the well-known variables, then the mode.
Result<void> applyFallbacks(Command& command, const EnvLookup& env) {
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

}  // namespace

Result<Command> parseCommandLine(const std::vector<std::string>& args, const EnvLookup& env,
                                 bool stdoutIsTty) {
  Command command;
  command.options.logFormat = stdoutIsTty ? LogFormat::Text : LogFormat::Json;
  if (auto ok = applyEnvironment(command.options, env); !ok) return fail(ok.error());
  auto words = parseWords(args, command);
  if (!words) return fail(words.error());
  if (words->stopped) return command;
  if (auto ok = checkArguments(command, words->positional); !ok) return fail(ok.error());
  command.arguments = std::move(words->positional);
  if (auto ok = applyFallbacks(command, env); !ok) return fail(ok.error());
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
      "  eni-agent version                            print the version\n"
      "\n"
      "Flags (each can also be set as ENI_AGENT_<FLAG_IN_UPPER_SNAKE>; the flag wins):\n";
  for (const auto& spec : flagSpecs()) {
    std::string left = "  --" + spec.name;
    if (!spec.valueName.empty()) left += " " + spec.valueName;
    if (left.size() < 42)
      left.resize(42, ' ');
    else
      left += "\n" + std::string(42, ' ');
    out += left + spec.help + "\n" + std::string(42, ' ') + "default: " + spec.defaultText +
           "; env " + envName(spec.name) + "\n";
  }
  out +=
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
