#include <gtest/gtest.h>

#include <map>
#include <set>

#include "ec2/imds.h"
#include "ec2/ip_prefix.h"

namespace eni {
namespace {

InterfaceMap sampleMap() {
  InterfaceMap map;
  ImdsInterface primary;
  primary.mac = "02:00:00:00:00:01";
  primary.interfaceId = "eni-primary";
  primary.localIpv4s = {"10.0.1.10", "10.0.1.11"};
  ImdsInterface delegated;
  delegated.mac = "02:00:00:00:00:02";
  delegated.interfaceId = "eni-prefix";
  delegated.localIpv4s = {"10.0.1.20"};
  delegated.ipv4Prefixes = {"10.0.1.48/28", "10.0.1.64/28"};
  delegated.ipv6Prefixes = {"2600:1f14:abc:1200::/80"};
  map.interfaces = {primary, delegated};
  return map;
}

TEST(InterfaceMap, SecondaryIpsAndDelegatedPrefixes) {
  const auto map = sampleMap();
  ASSERT_NE(map.findByIp("10.0.1.11"), nullptr);
  EXPECT_EQ(map.findByIp("10.0.1.11")->interfaceId, "eni-primary");
  EXPECT_EQ(map.findByIp("10.0.1.20")->interfaceId, "eni-prefix");
  EXPECT_EQ(map.findByIp("10.0.1.48")->interfaceId, "eni-prefix");  // first of the /28
  EXPECT_EQ(map.findByIp("10.0.1.63")->interfaceId, "eni-prefix");  // last of the /28
  EXPECT_EQ(map.findByIp("10.0.1.70")->interfaceId, "eni-prefix");  // the second prefix
  EXPECT_EQ(map.findByIp("10.0.1.47"), nullptr);                    // just below
  EXPECT_EQ(map.findByIp("10.0.1.80"), nullptr);                    // just above
  EXPECT_EQ(map.findByIp("2600:1f14:abc:1200::5")->interfaceId, "eni-prefix");
  EXPECT_EQ(map.findByIp("2600:1f14:abc:1201::5"), nullptr);
  EXPECT_EQ(map.findByIp("not-an-ip"), nullptr);
  EXPECT_EQ(map.findByMac("02:00:00:00:00:02")->interfaceId, "eni-prefix");
}

// An in-memory IMDS tree for readInterfaceMap: a path answers its text, NotFound when absent
// (or listed as stale), Transient when IMDS is made to fail on it. Counts the reads.
struct FakeImdsTree {
  std::map<std::string, std::string> paths;
  std::set<std::string> stale;    // listed, but answering 404 (eventual consistency)
  std::set<std::string> failing;  // answering 500 after the client's retries
  int reads = 0;

  static constexpr const char* kMacA = "02:00:00:00:00:0a";
  static constexpr const char* kMacB = "02:00:00:00:00:0b";

  FakeImdsTree() {
    paths["network/interfaces/macs/"] = std::string(kMacA) + "/\n" + kMacB + "/";
    add(kMacA, {{"device-number", "0"},
                {"interface-id", "eni-a"},
                {"local-ipv4s", "10.0.1.10\n10.0.1.11"},
                {"mac", kMacA},
                {"security-group-ids", "sg-1"},
                {"subnet-id", "subnet-a"},
                {"vpc-id", "vpc-1"}});
    add(kMacB, {{"device-number", "1"},
                {"interface-id", "eni-b"},
                {"ipv4-prefix", "10.0.2.48/28"},
                {"ipv6-prefix", "2600:1f14:abc:1200::/80"},
                {"ipv6s", "2600:1f14:abc:1201::5"},
                {"local-ipv4s", "10.0.2.20"},
                {"mac", kMacB},
                {"security-group-ids", "sg-1\nsg-2"},
                {"subnet-id", "subnet-b"},
                {"vpc-id", "vpc-1"}});
  }
  // Lists only the keys given, as IMDS lists only keys that have a value.
  void add(const std::string& mac, const std::map<std::string, std::string>& keys) {
    const std::string base = "network/interfaces/macs/" + mac + "/";
    std::string listing;
    for (const auto& [k, v] : keys) {
      listing += (listing.empty() ? "" : "\n") + k;
      paths[base + k] = v;
    }
    paths[base] = listing;
  }
  Result<std::string> get(const std::string& path) {
    ++reads;
    if (failing.count(path) != 0) return fail(ErrorCode::Transient, "IMDS " + path + ": HTTP 500");
    auto it = paths.find(path);
    if (it == paths.end() || stale.count(path) != 0) {
      return fail(ErrorCode::NotFound, "IMDS " + path + ": HTTP 404");
    }
    return it->second;
  }
  Result<InterfaceMap> read() {
    return readInterfaceMap([this](const std::string& p) { return get(p); });
  }
  static std::string key(const char* mac, const std::string& k) {
    return "network/interfaces/macs/" + std::string(mac) + "/" + k;
  }
};

TEST(ImdsInterfaceMap, ReadsEveryListedKey) {
  FakeImdsTree imds;
  auto map = imds.read();
  ASSERT_TRUE(map) << map.error().message;
  ASSERT_EQ(map->interfaces.size(), 2u);
  EXPECT_TRUE(map->skippedMacs.empty());
  const auto* b = map->findByMac(FakeImdsTree::kMacB);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->interfaceId, "eni-b");
  EXPECT_EQ(b->deviceNumber, 1);
  EXPECT_EQ(b->localIpv4s, std::vector<std::string>{"10.0.2.20"});
  EXPECT_EQ(b->ipv4Prefixes, std::vector<std::string>{"10.0.2.48/28"});
  EXPECT_EQ(b->ipv6s, std::vector<std::string>{"2600:1f14:abc:1201::5"});
  EXPECT_EQ(b->ipv6Prefixes, std::vector<std::string>{"2600:1f14:abc:1200::/80"});
  EXPECT_EQ(b->securityGroupIds, (std::vector<std::string>{"sg-1", "sg-2"}));
  EXPECT_EQ(b->subnetId, "subnet-b");
  EXPECT_EQ(b->vpcId, "vpc-1");
  const auto* a = map->findByMac(FakeImdsTree::kMacA);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->ipv4Prefixes.empty()) << "not listed: none, and not asked for";
  EXPECT_EQ(imds.reads, 1 + 2 + 6 + 9) << "the macs list, two listings, every listed key but mac";
}

std::string paramName(const ::testing::TestParamInfo<std::string>& param) {
  std::string n = param.param;
  for (char& c : n) c = c == '-' ? '_' : c;
  return n;
}

class OptionalKeyStale : public ::testing::TestWithParam<std::string> {};

// A 404 on an optional key that IMDS listed reads as empty; the interface and every other one
// stay in the map.
TEST_P(OptionalKeyStale, ReadsAsEmptyAndSkipsNothing) {
  FakeImdsTree imds;
  imds.stale.insert(FakeImdsTree::key(FakeImdsTree::kMacB, GetParam()));
  auto map = imds.read();
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_TRUE(map->skippedMacs.empty());
  ASSERT_EQ(map->interfaces.size(), 2u);
  const auto* b = map->findByMac(FakeImdsTree::kMacB);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->interfaceId, "eni-b");
  EXPECT_EQ(map->findByIp("10.0.2.20"), b);
  EXPECT_EQ(map->findByIp("10.0.1.11")->interfaceId, "eni-a");
  if (GetParam() == "ipv4-prefix") {
    EXPECT_TRUE(b->ipv4Prefixes.empty());
    EXPECT_EQ(map->findByIp("10.0.2.50"), nullptr);
  }
  if (GetParam() == "subnet-id") {
    EXPECT_TRUE(b->subnetId.empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Keys, OptionalKeyStale,
                         ::testing::Values("ipv4-prefix", "ipv6s", "ipv6-prefix",
                                           "security-group-ids", "subnet-id", "vpc-id"),
                         paramName);

class RequiredKeyStale : public ::testing::TestWithParam<std::string> {};

// A 404 on a key an interface cannot do without skips that interface on this read, says so, and
// leaves the others; the next read, once IMDS caught up, has it again.
TEST_P(RequiredKeyStale, SkipsOnlyThatInterfaceUntilALaterRead) {
  FakeImdsTree imds;
  const std::string path = GetParam() == "listing"
                               ? "network/interfaces/macs/" + std::string(FakeImdsTree::kMacB) + "/"
                               : FakeImdsTree::key(FakeImdsTree::kMacB, GetParam());
  imds.stale.insert(path);
  auto map = imds.read();
  ASSERT_TRUE(map) << map.error().message;
  ASSERT_EQ(map->interfaces.size(), 1u);
  EXPECT_EQ(map->interfaces[0].interfaceId, "eni-a");
  EXPECT_EQ(map->findByMac(FakeImdsTree::kMacB), nullptr);
  ASSERT_EQ(map->skippedMacs.count(FakeImdsTree::kMacB), 1u);
  EXPECT_NE(map->skippedMacs.at(FakeImdsTree::kMacB).find(path), std::string::npos)
      << map->skippedMacs.at(FakeImdsTree::kMacB);
  EXPECT_EQ(map->findByIp("10.0.1.10")->interfaceId, "eni-a");

  imds.stale.clear();
  auto later = imds.read();
  ASSERT_TRUE(later);
  EXPECT_TRUE(later->skippedMacs.empty());
  ASSERT_NE(later->findByMac(FakeImdsTree::kMacB), nullptr);
  EXPECT_EQ(later->findByIp("10.0.2.20")->interfaceId, "eni-b");
}

INSTANTIATE_TEST_SUITE_P(Keys, RequiredKeyStale,
                         ::testing::Values("local-ipv4s", "interface-id", "device-number",
                                           "listing"),
                         paramName);

TEST(ImdsInterfaceMap, ADeviceNumberThatIsNotANumberSkipsTheInterface) {
  FakeImdsTree imds;
  imds.paths[FakeImdsTree::key(FakeImdsTree::kMacB, "device-number")] = "<html>oops</html>";
  auto map = imds.read();
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_EQ(map->findByMac(FakeImdsTree::kMacB), nullptr) << "never read as device 0";
  EXPECT_EQ(map->skippedMacs.count(FakeImdsTree::kMacB), 1u);
}

TEST(ImdsInterfaceMap, AnIpv6OnlyInterfaceWithoutLocalIpv4sIsKept) {
  FakeImdsTree imds;
  imds.add(FakeImdsTree::kMacB, {{"device-number", "1"},
                                 {"interface-id", "eni-b"},
                                 {"ipv6s", "2600:1f14:abc:1201::5"},
                                 {"subnet-id", "subnet-b"}});
  auto map = imds.read();
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_TRUE(map->skippedMacs.empty());
  EXPECT_EQ(map->findByIp("2600:1f14:abc:1201::5")->interfaceId, "eni-b");
}

TEST(ImdsInterfaceMap, OtherFailuresStillFailTheWholeMap) {
  FakeImdsTree imds;
  imds.failing.insert(FakeImdsTree::key(FakeImdsTree::kMacB, "ipv4-prefix"));
  auto map = imds.read();
  ASSERT_FALSE(map);
  EXPECT_EQ(map.error().code, ErrorCode::Transient);
  FakeImdsTree gone;
  gone.stale.insert("network/interfaces/macs/");
  auto none = gone.read();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::NotFound);
}

TEST(IpPrefix, ParsesAndContains) {
  EXPECT_TRUE(IpPrefix::parse("10.0.0.0/8")->contains(*IpPrefix::parse("10.255.1.1")));
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/8")->contains(*IpPrefix::parse("11.0.0.1")));
  EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0")->contains(*IpPrefix::parse("192.0.2.1")));
  EXPECT_TRUE(IpPrefix::parse("10.0.1.5")->contains(*IpPrefix::parse("10.0.1.5")));
  EXPECT_FALSE(IpPrefix::parse("10.0.1.5")->contains(*IpPrefix::parse("10.0.1.6")));
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/8")->contains(*IpPrefix::parse("::a00:1")));
  for (const char* bad :
       {"10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "10.0.0.0/x", "", "/8", "::/129"}) {
    EXPECT_FALSE(IpPrefix::parse(bad)) << bad;
  }
}

TEST(ImdsList, SplitsLinesAndSlashes) {
  EXPECT_EQ(splitImdsList("02:aa/\n02:bb/\n"), (std::vector<std::string>{"02:aa", "02:bb"}));
  EXPECT_EQ(splitImdsList("10.0.0.1"), std::vector<std::string>{"10.0.0.1"});
  EXPECT_TRUE(splitImdsList("").empty());
  EXPECT_TRUE(splitImdsList("\n\n").empty());
}

}  // namespace
}  // namespace eni
