// EC2 Query API answers decoded with pugixml: DescribeNetworkInterfaces (the resync and cold-start
// read), CreateTags' <return>true</return> and an error body. Figures only; never pass or fail.
#include <benchmark/benchmark.h>

#include <string>

#include "ec2/ec2_xml.h"

namespace {

// An answer shaped like EC2's: `enis` interfaces, each attached, with 30 private IPs, two
// security groups and five tags.
std::string describeEnis(int enis) {
  std::string out =
      R"(<?xml version="1.0" encoding="UTF-8"?>)"
      R"(<DescribeNetworkInterfacesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">)"
      R"(<requestId>8d2f7c44-0d4b-4a51-9b3d-1b1f2c3d4e5f</requestId><networkInterfaceSet>)";
  for (int e = 0; e < enis; ++e) {
    const std::string n = std::to_string(e);
    out += "<item><networkInterfaceId>eni-0a1b2c3d4e5f6" + std::to_string(1000 + e) +
           "</networkInterfaceId><subnetId>subnet-0123456789abcdef0</subnetId>"
           "<vpcId>vpc-0123456789abcdef0</vpcId><availabilityZone>us-east-1a</availabilityZone>"
           "<description>aws-K8S-i-0123456789abcdef0</description><ownerId>123456789012</ownerId>"
           "<requesterManaged>false</requesterManaged><status>in-use</status>"
           "<macAddress>02:1a:2b:3c:4d:" +
           std::to_string(10 + e) + "</macAddress><privateIpAddress>10.0." + n +
           ".10</privateIpAddress><sourceDestCheck>true</sourceDestCheck>"
           "<groupSet><item><groupId>sg-0123456789abcdef0</groupId><groupName>nodes</groupName>"
           "</item><item><groupId>sg-0fedcba9876543210</groupId><groupName>pods</groupName></item>"
           "</groupSet><attachment><attachmentId>eni-attach-0123456789abcdef" +
           n +
           "</attachmentId><instanceId>i-0123456789abcdef0</instanceId>"
           "<instanceOwnerId>123456789012</instanceOwnerId><deviceIndex>" +
           n +
           "</deviceIndex><status>attached</status><attachTime>2026-11-23T10:00:00.000Z"
           "</attachTime><deleteOnTermination>true</deleteOnTermination></attachment>"
           "<tagSet>";
    for (const char* key : {"Team", "CostCenter", "Env", "App", "eni-tagger.io/hash"}) {
      out += std::string("<item><key>") + key + "</key><value>value-of-" + key + "</value></item>";
    }
    out += "</tagSet><privateIpAddressesSet>";
    for (int a = 0; a < 30; ++a) {
      out += "<item><privateIpAddress>10.0." + n + "." + std::to_string(10 + a) +
             "</privateIpAddress><primary>" + (a == 0 ? "true" : "false") + "</primary></item>";
    }
    out +=
        "</privateIpAddressesSet><ipv6AddressesSet/><interfaceType>interface</interfaceType>"
        "</item>";
  }
  return out + "</networkInterfaceSet></DescribeNetworkInterfacesResponse>";
}

void BM_DecodeDescribeNetworkInterfaces(benchmark::State& state) {
  const std::string body = describeEnis(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto page = eni::decodeDescribeNetworkInterfaces(body);
    if (!page || page->interfaces.size() != static_cast<std::size_t>(state.range(0))) {
      state.SkipWithError("the answer did not decode");
    }
    benchmark::DoNotOptimize(page);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
  state.counters["enis"] = benchmark::Counter(
      static_cast<double>(state.iterations() * state.range(0)), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeDescribeNetworkInterfaces)->Arg(1)->Arg(15)->Arg(100);

void BM_DecodeCreateTags(benchmark::State& state) {
  const std::string body =
      R"(<?xml version="1.0" encoding="UTF-8"?>)"
      R"(<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">)"
      R"(<requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId><return>true</return>)"
      R"(</CreateTagsResponse>)";
  for (auto _ : state) {
    auto r = eni::decodeReturnTrue("CreateTags", body);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeCreateTags);

void BM_DecodeThrottleError(benchmark::State& state) {
  const std::string body =
      R"(<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>)"
      R"(<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error>)"
      R"(</Errors><RequestID>fault-proxy-1</RequestID></Response>)";
  for (auto _ : state) {
    auto e = eni::decodeEc2Error("CreateTags", 503, body);
    benchmark::DoNotOptimize(e);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeThrottleError);

}  // namespace
