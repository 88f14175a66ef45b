#include <gtest/gtest.h>

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
