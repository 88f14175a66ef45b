#include "agent/config/command_line.h"

#include <gtest/gtest.h>

#include <map>

namespace eni {
namespace {

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Result<Command> parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return parseCommandLine(args, envOf(std::move(env)), false);
}

TEST(CommandLine, DefaultsMatchDesign) {
  auto c = parse({});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->kind, CommandKind::Run);
  const AgentOptions& o = c->options;
  EXPECT_EQ(o.mode, RunMode::Host);  // no kubeconfig, not in a cluster
  EXPECT_EQ(o.configPath, "/etc/eni-agent/host.json");
  EXPECT_EQ(o.stateDir, "/var/lib/eni-agent");
  EXPECT_EQ(o.annotationKey, "eni-tagger.io/tags");
  EXPECT_DOUBLE_EQ(o.awsRateLimitQps, 5);
  EXPECT_EQ(o.awsRateLimitBurst, 10);
  EXPECT_EQ(o.resyncInterval, std::chrono::minutes(30));
  EXPECT_EQ(o.nodeEniCheckInterval, std::chrono::minutes(5));
  EXPECT_EQ(o.watchIdleTimeout, std::chrono::seconds(60));
  EXPECT_TRUE(o.enableTagger);
  EXPECT_TRUE(o.enableEniManager);
  EXPECT_TRUE(o.manageLinks);
  EXPECT_FALSE(o.dryRun);
  EXPECT_EQ(o.sharedEniTagging, SharedEniTagging::Refuse) << "k8s-eni-tagger's rule";
  EXPECT_TRUE(o.watchNamespace.empty());
  EXPECT_EQ(o.eniTaggerCacheNamespace, "kube-system");
  EXPECT_TRUE(o.noEffectFlags.empty());
  EXPECT_EQ(o.metricsBindAddress, ":8090");
  // Loopback only: /healthz and /readyz are unauthenticated and the pod is on the host network.
  EXPECT_EQ(o.healthProbeBindAddress, "127.0.0.1:8081");
  EXPECT_EQ(o.logFormat, LogFormat::Json);
  EXPECT_EQ(o.logLevel, LogLevel::Info);
  EXPECT_FALSE(o.runAsUser) << "no drop unless asked: the process keeps the user it started as";
}

TEST(CommandLine, TextLogsOnATerminal) {
  auto c = parseCommandLine({}, envOf({}), true);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->options.logFormat, LogFormat::Text);
}

TEST(CommandLine, EveryFlagParsesFromFlagAndEnvironment) {
  const std::vector<std::string> args = {"--mode=kubernetes",
                                         "--node-name",
                                         "n1",
                                         "--kubeconfig=/k",
                                         "--config=/c.json",
                                         "--state-dir=/s",
                                         "--region=eu-west-1",
                                         "--annotation-key=acme.io/tags",
                                         "--tag-namespace=acme",
                                         "--subnet-ids=subnet-1a,subnet-2b",
                                         "--allow-shared-eni-tagging",
                                         "--shared-eni-tagging=any",
                                         "--watch-namespace=payments",
                                         "--eni-tagger-cache-namespace=tagger",
                                         "--dry-run=true",
                                         "--aws-rate-limit-qps=2.5",
                                         "--aws-rate-limit-burst=4",
                                         "--resync-interval=1h30m",
                                         "--nodeeni-check-interval=0s",
                                         "--watch-idle-timeout=2m",
                                         "--enable-tagger=false",
                                         "--enable-eni-manager=false",
                                         "--manage-links=false",
                                         "--link-netns=/run/netns/t",
                                         "--run-as-user=65532:65533",
                                         "--metrics-bind-address=127.0.0.1:9000",
                                         "--health-probe-bind-address=:9001",
                                         "--log-format=text",
                                         "--log-level=debug"};
  auto fromFlags = parse(args);
  ASSERT_TRUE(fromFlags) << fromFlags.error().message;

  std::map<std::string, std::string> env = {{"ENI_AGENT_MODE", "kubernetes"},
                                            {"ENI_AGENT_NODE_NAME", "n1"},
                                            {"ENI_AGENT_KUBECONFIG", "/k"},
                                            {"ENI_AGENT_CONFIG", "/c.json"},
                                            {"ENI_AGENT_STATE_DIR", "/s"},
                                            {"ENI_AGENT_REGION", "eu-west-1"},
                                            {"ENI_AGENT_ANNOTATION_KEY", "acme.io/tags"},
                                            {"ENI_AGENT_TAG_NAMESPACE", "acme"},
                                            {"ENI_AGENT_SUBNET_IDS", "subnet-1a, subnet-2b"},
                                            {"ENI_AGENT_ALLOW_SHARED_ENI_TAGGING", "true"},
                                            {"ENI_AGENT_SHARED_ENI_TAGGING", "any"},
                                            {"ENI_AGENT_WATCH_NAMESPACE", "payments"},
                                            {"ENI_AGENT_ENI_TAGGER_CACHE_NAMESPACE", "tagger"},
                                            {"ENI_AGENT_DRY_RUN", "1"},
                                            {"ENI_AGENT_AWS_RATE_LIMIT_QPS", "2.5"},
                                            {"ENI_AGENT_AWS_RATE_LIMIT_BURST", "4"},
                                            {"ENI_AGENT_RESYNC_INTERVAL", "90m"},
                                            {"ENI_AGENT_NODEENI_CHECK_INTERVAL", "0s"},
                                            {"ENI_AGENT_WATCH_IDLE_TIMEOUT", "120s"},
                                            {"ENI_AGENT_ENABLE_TAGGER", "false"},
                                            {"ENI_AGENT_ENABLE_ENI_MANAGER", "0"},
                                            {"ENI_AGENT_MANAGE_LINKS", "false"},
                                            {"ENI_AGENT_LINK_NETNS", "/run/netns/t"},
                                            {"ENI_AGENT_RUN_AS_USER", "65532:65533"},
                                            {"ENI_AGENT_METRICS_BIND_ADDRESS", "127.0.0.1:9000"},
                                            {"ENI_AGENT_HEALTH_PROBE_BIND_ADDRESS", ":9001"},
                                            {"ENI_AGENT_LOG_FORMAT", "text"},
                                            {"ENI_AGENT_LOG_LEVEL", "debug"}};
  auto fromEnv = parse({}, env);
  ASSERT_TRUE(fromEnv) << fromEnv.error().message;

  for (const auto* c : {&*fromFlags, &*fromEnv}) {
    const AgentOptions& o = c->options;
    EXPECT_EQ(o.mode, RunMode::Kubernetes);
    EXPECT_EQ(o.nodeName, "n1");
    EXPECT_EQ(o.kubeconfig, "/k");
    EXPECT_EQ(o.configPath, "/c.json");
    EXPECT_EQ(o.stateDir, "/s");
    EXPECT_EQ(o.region, "eu-west-1");
    EXPECT_EQ(o.annotationKey, "acme.io/tags");
    EXPECT_EQ(o.tagNamespace, "acme");
    EXPECT_EQ(o.subnetIds, (std::vector<std::string>{"subnet-1a", "subnet-2b"}));
    EXPECT_EQ(o.sharedEniTagging, SharedEniTagging::Any);
    EXPECT_EQ(o.watchNamespace, "payments");
    EXPECT_EQ(o.eniTaggerCacheNamespace, "tagger");
    EXPECT_TRUE(o.dryRun);
    EXPECT_DOUBLE_EQ(o.awsRateLimitQps, 2.5);
    EXPECT_EQ(o.awsRateLimitBurst, 4);
    EXPECT_EQ(o.resyncInterval, std::chrono::minutes(90));
    EXPECT_EQ(o.nodeEniCheckInterval, Duration(0));
    EXPECT_EQ(o.watchIdleTimeout, std::chrono::minutes(2));
    EXPECT_FALSE(o.enableTagger);
    EXPECT_FALSE(o.enableEniManager);
    EXPECT_FALSE(o.manageLinks);
    EXPECT_EQ(o.linkNetns, "/run/netns/t");
    EXPECT_EQ(o.runAsUser, (RunAsUser{65532, 65533}));
    EXPECT_EQ(o.metricsBindAddress, "127.0.0.1:9000");
    EXPECT_EQ(o.healthProbeBindAddress, ":9001");
    EXPECT_EQ(o.logFormat, LogFormat::Text);
    EXPECT_EQ(o.logLevel, LogLevel::Debug);
  }
}

TEST(CommandLine, HelpListsEveryFlagWithItsVariable) {
  const std::string help = helpText();
  for (const char* flag : {"mode",
                           "node-name",
                           "kubeconfig",
                           "config",
                           "state-dir",
                           "region",
                           "annotation-key",
                           "tag-namespace",
                           "subnet-ids",
                           "allow-shared-eni-tagging",
                           "shared-eni-tagging",
                           "watch-namespace",
                           "eni-tagger-cache-namespace",
                           "leader-elect",
                           "max-concurrent-reconciles",
                           "enable-eni-cache",
                           "enable-cache-configmap",
                           "cache-batch-interval",
                           "cache-batch-size",
                           "pprof-bind-address",
                           "pod-rate-limit-qps",
                           "pod-rate-limit-burst",
                           "rate-limiter-cleanup-interval",
                           "aws-health-max-successes",
                           "dry-run",
                           "aws-rate-limit-qps",
                           "aws-rate-limit-burst",
                           "resync-interval",
                           "nodeeni-check-interval",
                           "watch-idle-timeout",
                           "enable-tagger",
                           "enable-eni-manager",
                           "manage-links",
                           "link-netns",
                           "dpdk-sysfs-root",
                           "sriov-config-path",
                           "run-as-user",
                           "metrics-bind-address",
                           "health-probe-bind-address",
                           "log-format",
                           "log-level"}) {
    EXPECT_NE(help.find(std::string("--") + flag), std::string::npos) << flag;
  }
  EXPECT_NE(help.find("ENI_AGENT_AWS_RATE_LIMIT_QPS"), std::string::npos);
  EXPECT_NE(help.find("ENI_TAGGER_AWS_RATE_LIMIT_QPS"), std::string::npos);
  EXPECT_EQ(help.find("ENI_TAGGER_MODE"), std::string::npos) << "not a k8s-eni-tagger flag";
}

TEST(CommandLine, FlagWinsOverEnvironment) {
  auto c = parse({"--aws-rate-limit-qps=7"}, {{"ENI_AGENT_AWS_RATE_LIMIT_QPS", "3"}});
  ASSERT_TRUE(c);
  EXPECT_DOUBLE_EQ(c->options.awsRateLimitQps, 7);
}

// DPDK's roots: /sys and the SR-IOV device plugin's default config path; an empty sysfs root turns
// DPDK off (NodeENIs with enableDPDK are then refused), an empty config path is an error.
TEST(CommandLine, DpdkSysfsRootAndSriovConfigPath) {
  EXPECT_EQ(parse({})->options.dpdkSysfsRoot, "/sys");
  EXPECT_EQ(parse({})->options.sriovConfigPath, "/etc/pcidp/config.json");
  auto c = parse({"--dpdk-sysfs-root=/tmp/sys", "--sriov-config-path=/tmp/pcidp.json"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->options.dpdkSysfsRoot, "/tmp/sys");
  EXPECT_EQ(c->options.sriovConfigPath, "/tmp/pcidp.json");
  EXPECT_EQ(parse({"--dpdk-sysfs-root="})->options.dpdkSysfsRoot, "");
  EXPECT_EQ(parse({}, {{"ENI_AGENT_DPDK_SYSFS_ROOT", "/host/sys"}})->options.dpdkSysfsRoot,
            "/host/sys");
  EXPECT_FALSE(parse({"--sriov-config-path="}));
}

// aws-multi-eni-controller's MAX_CLEANUP_DURATION is read after ENI_AGENT_MAX_CLEANUP_DURATION;
// the flag wins over both.
TEST(CommandLine, MaxCleanupDurationTakesTheOldToolsVariableAsAFallback) {
  EXPECT_EQ(parse({})->options.maxCleanupDuration, std::chrono::minutes(30));
  EXPECT_EQ(parse({"--max-cleanup-duration=45s"})->options.maxCleanupDuration,
            std::chrono::seconds(45));
  EXPECT_EQ(parse({}, {{"MAX_CLEANUP_DURATION", "1h"}})->options.maxCleanupDuration,
            std::chrono::hours(1));
  EXPECT_EQ(parse({}, {{"MAX_CLEANUP_DURATION", "1h"}, {"ENI_AGENT_MAX_CLEANUP_DURATION", "10m"}})
                ->options.maxCleanupDuration,
            std::chrono::minutes(10));
  EXPECT_EQ(parse({"--max-cleanup-duration=2m"},
                  {{"MAX_CLEANUP_DURATION", "1h"}, {"ENI_AGENT_MAX_CLEANUP_DURATION", "10m"}})
                ->options.maxCleanupDuration,
            std::chrono::minutes(2));
  auto bad = parse({}, {{"MAX_CLEANUP_DURATION", "soon"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("MAX_CLEANUP_DURATION"), std::string::npos)
      << bad.error().message;
  EXPECT_FALSE(parse({"--max-cleanup-duration=500ms"})) << "below 1s";
  // Go takes 1.5h; the refusal says how to write it here.
  auto fraction = parse({}, {{"MAX_CLEANUP_DURATION", "1.5h"}});
  ASSERT_FALSE(fraction);
  EXPECT_NE(fraction.error().message.find("1h30m"), std::string::npos) << fraction.error().message;
  EXPECT_NE(helpText().find("env ENI_AGENT_MAX_CLEANUP_DURATION or MAX_CLEANUP_DURATION"),
            std::string::npos);
}

// aws-multi-eni-controller's environment, each read after our ENI_AGENT_ variable; flags win.
TEST(CommandLine, MaxConcurrentEniCleanupIsTheReleaseConcurrency) {
  EXPECT_EQ(parse({})->options.releaseConcurrency, 3);
  EXPECT_EQ(parse({}, {{"MAX_CONCURRENT_ENI_CLEANUP", "8"}})->options.releaseConcurrency, 8);
  EXPECT_EQ(parse({}, {{"MAX_CONCURRENT_ENI_CLEANUP", "8"}, {"ENI_AGENT_RELEASE_CONCURRENCY", "2"}})
                ->options.releaseConcurrency,
            2);
  EXPECT_EQ(parse({"--release-concurrency=5"},
                  {{"MAX_CONCURRENT_ENI_CLEANUP", "8"}, {"ENI_AGENT_RELEASE_CONCURRENCY", "2"}})
                ->options.releaseConcurrency,
            5);
  auto zero = parse({}, {{"MAX_CONCURRENT_ENI_CLEANUP", "0"}});
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message.find("MAX_CONCURRENT_ENI_CLEANUP"), std::string::npos);
  EXPECT_FALSE(parse({"--release-concurrency=65"}));
}

TEST(CommandLine, DetachmentTimeoutIsTheDetachWait) {
  EXPECT_EQ(parse({})->options.detachTimeout, std::chrono::seconds(30));
  EXPECT_EQ(parse({}, {{"DETACHMENT_TIMEOUT", "15s"}})->options.detachTimeout,
            std::chrono::seconds(15));
  EXPECT_EQ(parse({}, {{"DETACHMENT_TIMEOUT", "15s"}, {"ENI_AGENT_DETACH_TIMEOUT", "1m"}})
                ->options.detachTimeout,
            std::chrono::minutes(1));
  EXPECT_EQ(parse({"--detach-timeout=45s"},
                  {{"DETACHMENT_TIMEOUT", "15s"}, {"ENI_AGENT_DETACH_TIMEOUT", "1m"}})
                ->options.detachTimeout,
            std::chrono::seconds(45));
  auto bad = parse({}, {{"DETACHMENT_TIMEOUT", "15"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("DETACHMENT_TIMEOUT"), std::string::npos);
  EXPECT_FALSE(parse({"--detach-timeout=500ms"}));
}

// aws-multi-eni-controller re-checked its NodeENIs every RECONCILE_PERIOD: here that is the
// NodeENI drift check, not the tagger's resync.
TEST(CommandLine, ReconcilePeriodIsTheNodeEniCheckInterval) {
  EXPECT_EQ(parse({}, {{"RECONCILE_PERIOD", "2m"}})->options.nodeEniCheckInterval,
            std::chrono::minutes(2));
  EXPECT_EQ(parse({}, {{"RECONCILE_PERIOD", "2m"}})->options.resyncInterval,
            std::chrono::minutes(30));
  EXPECT_EQ(parse({}, {{"RECONCILE_PERIOD", "2m"}, {"ENI_AGENT_NODEENI_CHECK_INTERVAL", "10m"}})
                ->options.nodeEniCheckInterval,
            std::chrono::minutes(10));
  EXPECT_EQ(parse({"--nodeeni-check-interval=1h"}, {{"RECONCILE_PERIOD", "2m"}})
                ->options.nodeEniCheckInterval,
            std::chrono::hours(1));
  EXPECT_FALSE(parse({}, {{"RECONCILE_PERIOD", "500ms"}}));
}

// It overrode the spec in the old tool; here it is only read, for the ENI manager's note.
TEST(CommandLine, DefaultDeleteOnTerminationIsReadInGosFormsAndNothingMore) {
  EXPECT_FALSE(parse({})->options.legacyDefaultDeleteOnTermination);
  for (const char* no : {"false", "0", "f", "F", "FALSE", "False"}) {
    auto c = parse({}, {{"DEFAULT_DELETE_ON_TERMINATION", no}});
    ASSERT_TRUE(c) << no;
    EXPECT_EQ(c->options.legacyDefaultDeleteOnTermination, false) << no;
  }
  for (const char* yes : {"true", "1", "t", "T", "TRUE", "True"}) {
    EXPECT_EQ(parse({}, {{"DEFAULT_DELETE_ON_TERMINATION", yes}})
                  ->options.legacyDefaultDeleteOnTermination,
              true)
        << yes;
  }
  auto bad = parse({}, {{"DEFAULT_DELETE_ON_TERMINATION", "yes"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("DEFAULT_DELETE_ON_TERMINATION"), std::string::npos);
  EXPECT_NE(helpText().find("DEFAULT_DELETE_ON_TERMINATION"), std::string::npos);
}

TEST(CommandLine, RunAsUserTakesAGroupOrDefaultsItToTheUserAndEmptyMeansNoDrop) {
  auto both = parse({"--run-as-user", "1000:2000"});
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_EQ(both->options.runAsUser, (RunAsUser{1000, 2000}));
  auto userOnly = parse({"--run-as-user=65532"});
  ASSERT_TRUE(userOnly) << userOnly.error().message;
  EXPECT_EQ(userOnly->options.runAsUser, (RunAsUser{65532, 65532}));
  auto emptied = parse({"--run-as-user="}, {{"ENI_AGENT_RUN_AS_USER", "65532:65532"}});
  ASSERT_TRUE(emptied) << emptied.error().message;
  EXPECT_FALSE(emptied->options.runAsUser) << "an empty flag overrides the variable: no drop";
}

TEST(CommandLine, DerivedDefaultsComeFromTheirVariables) {
  auto c =
      parse({}, {{"NODE_NAME", "ip-10-0-0-1"}, {"KUBECONFIG", "/kc"}, {"AWS_REGION", "us-west-2"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->options.nodeName, "ip-10-0-0-1");
  EXPECT_EQ(c->options.kubeconfig, "/kc");
  EXPECT_EQ(c->options.region, "us-west-2");
  EXPECT_EQ(c->options.mode, RunMode::Kubernetes);
  auto inCluster = parse({}, {{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}});
  ASSERT_TRUE(inCluster);
  EXPECT_EQ(inCluster->options.mode, RunMode::Kubernetes);
}

struct BadInput {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string mustMention;
};

void PrintTo(const BadInput& input, std::ostream* os) {
  for (const auto& a : input.args) *os << a << " ";
  for (const auto& [k, v] : input.env) *os << k << "=" << v << " ";
}

class CommandLineRejects : public ::testing::TestWithParam<BadInput> {};

TEST_P(CommandLineRejects, WithAMessageNamingTheProblem) {
  auto c = parse(GetParam().args, GetParam().env);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::Invalid);
  EXPECT_NE(c.error().message.find(GetParam().mustMention), std::string::npos) << c.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CommandLineRejects,
    ::testing::Values(
        BadInput{{"--aws-rate-limit-qps=abc"}, {}, "--aws-rate-limit-qps"},
        BadInput{{"--aws-rate-limit-qps=0"}, {}, "greater than 0"},
        BadInput{{"--aws-rate-limit-qps=nan"}, {}, "--aws-rate-limit-qps"},
        BadInput{{"--aws-rate-limit-burst=-1"}, {}, "--aws-rate-limit-burst"},
        BadInput{{"--aws-rate-limit-burst=3.5"}, {}, "whole number"},
        BadInput{{"--resync-interval=5x"}, {}, "unknown unit"},
        BadInput{{"--resync-interval=10"}, {}, "unknown unit"},
        BadInput{{"--resync-interval=10ms"}, {}, "at least 1s"},
        BadInput{{"--nodeeni-check-interval=500ms"}, {}, "0s or at least 1s"},
        BadInput{{"--mode=cloud"}, {}, "kubernetes or host"},
        BadInput{{"--dry-run=maybe"}, {}, "true or false"},
        BadInput{{"--log-level=loud"}, {}, "--log-level"},
        BadInput{{"--log-format=xml"}, {}, "json or text"},
        BadInput{{"--subnet-ids=sn-1"}, {}, "subnet ID"},
        BadInput{{"--metrics-bind-address=localhost"}, {}, "[host]:port"},
        BadInput{{"--metrics-bind-address=99999"}, {}, "[host]:port"},
        BadInput{{"--subnet-ids=subnet-a,vpc-1"}, {}, "got \"vpc-1\""},
        BadInput{{}, {{"ENI_TAGGER_SUBNET_IDS", "sn-1"}}, "ENI_TAGGER_SUBNET_IDS"},
        BadInput{{"--shared-eni-tagging=sometimes"}, {}, "refuse, merge or any"},
        BadInput{{"--shared-eni-tagging=merge", "--allow-shared-eni-tagging"}, {}, "keep one"},
        BadInput{{"--watch-namespace=Team_A"}, {}, "namespace name"},
        BadInput{{"--version=maybe"}, {}, "--version"},
        BadInput{{"--max-concurrent-reconciles=many"}, {}, "--max-concurrent-reconciles"},
        BadInput{{"--leader-elect=yes"}, {}, "true or false"},
        BadInput{{"--cache-batch-interval=soon"}, {}, "--cache-batch-interval"},
        BadInput{{"--pod-rate-limit-qps=-1"}, {}, "0 or more"},
        BadInput{{"--pprof-bind-address=localhost"}, {}, "--pprof-bind-address"},
        BadInput{{}, {{"ENI_TAGGER_LEADER_ELECT", "sure"}}, "ENI_TAGGER_LEADER_ELECT"},
        BadInput{{"--health-probe-bind-address=:99999"}, {}, "0 to 65535"},
        BadInput{{"--run-as-user=nobody"}, {}, "names are not looked up"},
        BadInput{{"--run-as-user=0"}, {}, "0 is root"},
        BadInput{{"--run-as-user=65532:0"}, {}, "group ID 0 is root"},
        BadInput{{"--run-as-user=65532:"}, {}, "group ID must be a number"},
        BadInput{{}, {{"ENI_AGENT_RUN_AS_USER", "-1"}}, "ENI_AGENT_RUN_AS_USER"},
        BadInput{{"--bogus"}, {}, "unknown flag --bogus"}, BadInput{{"-x"}, {}, "unknown flag -x"},
        BadInput{{"--node-name"}, {}, "needs a value"}, BadInput{{"launch"}, {}, "unknown command"},
        BadInput{{"run", "extra"}, {}, "unexpected argument"},
        BadInput{{"validate-tags"}, {}, "exactly one argument"},
        BadInput{{"status", "--output=yaml"}, {}, "table or json"},
        BadInput{
            {}, {{"ENI_AGENT_AWS_RATE_LIMIT_BURST", "many"}}, "ENI_AGENT_AWS_RATE_LIMIT_BURST"},
        BadInput{{}, {{"ENI_AGENT_ENABLE_TAGGER", "yes please"}}, "--enable-tagger"},
        BadInput{{"--watch-idle-timeout=500ms"}, {}, "0s (off) or at least 1s"},
        BadInput{{"--watch-idle-timeout=soon"}, {}, "--watch-idle-timeout"},
        BadInput{{"--region=us-east-1a"}, {}, "AWS region name such as us-east-1"},
        BadInput{{"--region=<html>"}, {}, "--region"},
        BadInput{{}, {{"ENI_AGENT_REGION", "US-EAST-1"}}, "ENI_AGENT_REGION"},
        BadInput{{}, {{"AWS_REGION", "<html><body>502"}}, "AWS_REGION gave"},
        BadInput{{"status"}, {{"AWS_DEFAULT_REGION", "eu west 1"}}, "AWS_DEFAULT_REGION gave"}));

TEST(CommandLine, RegionsOfEveryPartitionAreAccepted) {
  for (const char* region : {"us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-4",
                             "eu-central-2", "il-central-1", "us-isob-east-1"}) {
    auto c = parse({std::string("--region=") + region});
    ASSERT_TRUE(c) << region << ": " << c.error().message;
    EXPECT_EQ(c->options.region, region);
    EXPECT_TRUE(parse({}, {{"AWS_REGION", region}})) << region;
  }
  // Empty means "not set": the region then comes from IMDS.
  EXPECT_TRUE(parse({"--region="}, {{"AWS_REGION", ""}}));
  // Commands that use no region do not fail on a bad one in the environment.
  EXPECT_TRUE(parse({"version"}, {{"AWS_REGION", "nowhere"}}));
}

TEST(CommandLine, SubCommands) {
  EXPECT_EQ(parse({"version"})->kind, CommandKind::Version);
  EXPECT_EQ(parse({"--version"})->kind, CommandKind::Version);
  EXPECT_EQ(parse({"--help"})->kind, CommandKind::Help);
  EXPECT_EQ(parse({"run", "-h"})->kind, CommandKind::Help);
  auto status = parse({"status", "--output", "json"});
  ASSERT_TRUE(status);
  EXPECT_EQ(status->kind, CommandKind::Status);
  EXPECT_EQ(status->statusOutput, "json");
  auto validate = parse({"validate-tags", "Team=a,Cost=1"});
  ASSERT_TRUE(validate);
  EXPECT_EQ(validate->kind, CommandKind::ValidateTags);
  EXPECT_EQ(validate->arguments, (std::vector<std::string>{"Team=a,Cost=1"}));
}

// k8s-eni-tagger's Deployment arguments, as its chart renders them, are accepted as they are.
TEST(CommandLine, EveryK8sEniTaggerFlagIsAccepted) {
  auto c = parse({"--metrics-bind-address=8090",
                  "--health-probe-bind-address=8081",
                  "--leader-elect",
                  "--annotation-key=eni-tagger.io/tags",
                  "--max-concurrent-reconciles=1",
                  "--dry-run=false",
                  "--watch-namespace=payments",
                  "--subnet-ids=subnet-0a,subnet-0b,",
                  "--allow-shared-eni-tagging=false",
                  "--enable-eni-cache=true",
                  "--enable-cache-configmap=true",
                  "--cache-batch-interval=2s",
                  "--cache-batch-size=20",
                  "--aws-rate-limit-qps=10",
                  "--aws-rate-limit-burst=20",
                  "--pprof-bind-address=0",
                  "--tag-namespace=enable",
                  "--pod-rate-limit-qps=0.5",
                  "--pod-rate-limit-burst=2",
                  "--rate-limiter-cleanup-interval=5m",
                  "--aws-health-max-successes=3"});
  ASSERT_TRUE(c) << c.error().message;
  const AgentOptions& o = c->options;
  EXPECT_EQ(c->kind, CommandKind::Run);
  EXPECT_EQ(o.metricsBindAddress, ":8090") << "a bare port is every address";
  EXPECT_EQ(o.healthProbeBindAddress, ":8081");
  EXPECT_EQ(o.watchNamespace, "payments");
  EXPECT_EQ(o.subnetIds, (std::vector<std::string>{"subnet-0a", "subnet-0b"}));
  EXPECT_EQ(o.sharedEniTagging, SharedEniTagging::Refuse);
  EXPECT_DOUBLE_EQ(o.awsRateLimitQps, 10);
  EXPECT_EQ(o.awsRateLimitBurst, 20);
  EXPECT_EQ(o.tagNamespace, "enable");
  EXPECT_FALSE(o.dryRun);
  EXPECT_EQ(
      o.noEffectFlags,
      (std::vector<std::string>{
          "leader-elect", "max-concurrent-reconciles", "enable-eni-cache", "enable-cache-configmap",
          "cache-batch-interval", "cache-batch-size", "pprof-bind-address", "pod-rate-limit-qps",
          "pod-rate-limit-burst", "rate-limiter-cleanup-interval", "aws-health-max-successes"}));
}

TEST(CommandLine, FlagsThatMeanNothingHereSayWhyOnceEach) {
  auto none = parse({});
  ASSERT_TRUE(none);
  EXPECT_TRUE(noEffectLines(none->options).empty()) << "only flags that were given";
  auto c = parse({"--leader-elect", "--leader-elect=false", "--pprof-bind-address=:6060"},
                 {{"ENI_TAGGER_ENABLE_CACHE_CONFIGMAP", "true"}});
  ASSERT_TRUE(c) << c.error().message;
  const auto lines = noEffectLines(c->options);
  ASSERT_EQ(lines.size(), 3u) << "--leader-elect twice is one line";
  EXPECT_EQ(lines[0].rfind("flag --enable-cache-configmap of k8s-eni-tagger has no effect here, "
                           "because ",
                           0),
            0u)
      << lines[0];
  EXPECT_NE(lines[1].find("--leader-elect"), std::string::npos);
  EXPECT_NE(lines[1].find("Lease"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("pprof"), std::string::npos) << lines[2];
}

TEST(CommandLine, EniTaggerVariablesAreReadAfterEniAgentOnesAndOnlyForItsFlags) {
  auto c = parse({}, {{"ENI_TAGGER_SUBNET_IDS", "subnet-0t"},
                      {"ENI_TAGGER_AWS_RATE_LIMIT_QPS", "10"},
                      {"ENI_AGENT_AWS_RATE_LIMIT_QPS", "3"},
                      {"ENI_TAGGER_WATCH_NAMESPACE", "payments"},
                      {"ENI_TAGGER_METRICS_BIND_ADDRESS", "9090"},
                      {"ENI_TAGGER_ALLOW_SHARED_ENI_TAGGING", "true"},
                      {"ENI_TAGGER_MODE", "kubernetes"},
                      {"ENI_TAGGER_LEADER_ELECT", "true"}});
  ASSERT_TRUE(c) << c.error().message;
  const AgentOptions& o = c->options;
  EXPECT_EQ(o.subnetIds, (std::vector<std::string>{"subnet-0t"}));
  EXPECT_DOUBLE_EQ(o.awsRateLimitQps, 3) << "ENI_AGENT_ wins over ENI_TAGGER_";
  EXPECT_EQ(o.watchNamespace, "payments");
  EXPECT_EQ(o.metricsBindAddress, ":9090");
  EXPECT_EQ(o.sharedEniTagging, SharedEniTagging::Any);
  EXPECT_EQ(o.mode, RunMode::Host) << "--mode is not k8s-eni-tagger's: ENI_TAGGER_MODE is not read";
  EXPECT_EQ(o.noEffectFlags, std::vector<std::string>{"leader-elect"});
  auto flagWins = parse({"--subnet-ids=subnet-0f"}, {{"ENI_TAGGER_SUBNET_IDS", "subnet-0t"},
                                                     {"ENI_AGENT_SUBNET_IDS", "subnet-0a"}});
  ASSERT_TRUE(flagWins);
  EXPECT_EQ(flagWins->options.subnetIds, std::vector<std::string>{"subnet-0f"});
}

TEST(CommandLine, BindAddresses) {
  struct Row {
    std::string given;
    std::string bound;
  };
  for (const Row& row : std::vector<Row>{{"8090", ":8090"},
                                         {":8090", ":8090"},
                                         {"0", "0"},
                                         {"127.0.0.1:9000", "127.0.0.1:9000"},
                                         {"[::1]:9000", "[::1]:9000"}}) {
    auto c =
        parse({"--metrics-bind-address=" + row.given, "--health-probe-bind-address", row.given});
    ASSERT_TRUE(c) << row.given << ": " << c.error().message;
    EXPECT_EQ(c->options.metricsBindAddress, row.bound) << row.given;
    EXPECT_EQ(c->options.healthProbeBindAddress, row.bound) << row.given;
  }
}

TEST(CommandLine, SharedEniTagging) {
  struct Row {
    std::vector<std::string> args;
    SharedEniTagging mode;
  };
  for (const Row& row : std::vector<Row>{
           {{}, SharedEniTagging::Refuse},
           {{"--shared-eni-tagging=refuse"}, SharedEniTagging::Refuse},
           {{"--shared-eni-tagging=merge"}, SharedEniTagging::Merge},
           {{"--shared-eni-tagging", "any"}, SharedEniTagging::Any},
           {{"--allow-shared-eni-tagging"}, SharedEniTagging::Any},
           {{"--allow-shared-eni-tagging=false"}, SharedEniTagging::Refuse},
           {{"--allow-shared-eni-tagging", "--shared-eni-tagging=any"}, SharedEniTagging::Any},
           {{"--shared-eni-tagging=merge", "--allow-shared-eni-tagging=false"},
            SharedEniTagging::Merge}}) {
    auto c = parse(row.args);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->options.sharedEniTagging, row.mode);
  }
}

TEST(CommandLine, VersionAsK8sEniTaggersBooleanFlag) {
  EXPECT_EQ(parse({"--version=true"})->kind, CommandKind::Version);
  EXPECT_EQ(parse({"--leader-elect", "--version"})->kind, CommandKind::Version);
  EXPECT_EQ(parse({"--version=false"})->kind, CommandKind::Run);
}

TEST(Duration, ParsesGoForm) {
  EXPECT_EQ(parseDuration("30m").value(), std::chrono::minutes(30));
  EXPECT_EQ(parseDuration("1h30m").value(), std::chrono::minutes(90));
  EXPECT_EQ(parseDuration("250ms").value(), Duration(250));
  EXPECT_EQ(parseDuration("2s").value(), Duration(2000));
  EXPECT_FALSE(parseDuration(""));
  EXPECT_FALSE(parseDuration("m"));
  EXPECT_FALSE(parseDuration("-5s"));
  EXPECT_FALSE(parseDuration("5 s"));
}

}  // namespace
}  // namespace eni
