#include "agent/config/region.h"

#include <gtest/gtest.h>

namespace eni {
namespace {

TEST(RegionName, TheFormOfEveryPartition) {
  for (const char* region :
       {"us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-4", "eu-central-2",
        "il-central-1", "us-isob-east-1", "me-south-1", "ca-west-1", "ap-northeast-3"}) {
    EXPECT_TRUE(isRegionName(region)) << region;
  }
}

TEST(RegionName, AnythingElseIsRefused) {
  for (const char* text :
       {"", "us", "us-east", "us-east-", "-us-east-1", "us-east-1a", "US-EAST-1", "use-east-1",
        "u-east-1", "us--east-1", "us-east-1-", "us-east-x", "us_east_1", "us-east-1\n",
        " us-east-1", "<html><body>502 Bad Gateway</body></html>", "us-1", "\xff\xfe\x00garbage"}) {
    EXPECT_FALSE(isRegionName(text)) << text;
  }
}

TEST(RegionName, TheErrorQuotesTheTextSafelyAndShort) {
  const std::string html =
      "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>...lots more...</body></html>";
  auto bad = checkRegionName(html, "IMDS placement/region");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::Invalid);
  EXPECT_EQ(bad.error().message,
            "IMDS placement/region gave \"<html>?<head><title>502 Bad Gateway</tit...\", which is "
            "not an AWS region name such as us-east-1");
  EXPECT_TRUE(checkRegionName("eu-west-3", "x"));
}

}  // namespace
}  // namespace eni
