// k8s-eni-tagger's ConfigMap eni-tagger-cache as eni-agent reads it: the entries it takes, those it
// skips, and the pods an entry counts for.
#include "agent/tagger/eni_tagger_cache.h"

#include <gtest/gtest.h>

#include "agent/base/json.h"

namespace eni {
namespace {

Json::Value configMap(const std::map<std::string, std::string>& data) {
  Json::Value cm;
  cm["metadata"]["name"] = kEniTaggerCacheName;
  cm["metadata"]["namespace"] = "kube-system";
  for (const auto& [k, v] : data) cm["data"][k] = v;
  return cm;
}

TEST(EniTaggerCache, EntriesAreTakenInK8sEniTaggersFormAndOthersSkipped) {
  const auto cm = configMap({
      // As k8s-eni-tagger writes it: ENIInfo under "info", the pod's UID beside it.
      {"10.0.1.5", R"({"info":{"ID":"eni-0abc123","SubnetID":"subnet-0a","InterfaceType":"branch",)"
                   R"("IsShared":false,"Description":"aws-k8s-branch-eni"},"pod_uid":"uid-web"})"},
      {"10.0.1.6", R"({"info":{"ID":"eni-0def456"},"pod_uid":"uid-api"})"},
      {"10.0.1.7", R"({"info":{"ID":"eni-0abc123","SubnetID":"subnet-0a"}})"},  // no pod UID
      {"10.0.1.8", R"({"ID":"eni-0abc123","SubnetID":"subnet-0a"})"},  // the form without UID
      {"10.0.1.9", R"({"info":{"ID":"i-0abc"},"pod_uid":"u"})"},       // not an ENI ID
      {"10.0.1.10", R"({"info":{"ID":"eni-0ABC"},"pod_uid":"u"})"},    // not EC2's form
      {"10.0.1.11", "not json"},
  });
  std::size_t skipped = 0;
  const auto entries = parseEniTaggerCache(cm, skipped);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(skipped, 5u);
  EXPECT_EQ(entries.at("10.0.1.5").eniId, "eni-0abc123");
  EXPECT_EQ(entries.at("10.0.1.5").podUid, "uid-web");
  EXPECT_EQ(entries.at("10.0.1.6").eniId, "eni-0def456");
}

TEST(EniTaggerCache, AnEntryCountsOnlyForThePodWithThatIpAndUid) {
  std::size_t skipped = 0;
  const auto entries = parseEniTaggerCache(
      configMap({{"10.0.1.5", R"({"info":{"ID":"eni-0abc123"},"pod_uid":"uid-web"})"}}), skipped);
  struct Row {
    const char* name;
    std::string ip;
    std::string uid;
    std::string eni;
  };
  for (const Row& row : std::vector<Row>{
           {"the pod", "10.0.1.5", "uid-web", "eni-0abc123"},
           {"a new pod with the IP reused", "10.0.1.5", "uid-other", ""},
           {"another IP", "10.0.1.6", "uid-web", ""},
           {"no UID", "10.0.1.5", "", ""},
       }) {
    EXPECT_EQ(cachedEniFor(entries, row.ip, row.uid), row.eni) << row.name;
  }
}

TEST(EniTaggerCache, AConfigMapWithoutDataHasNoEntries) {
  std::size_t skipped = 0;
  EXPECT_TRUE(parseEniTaggerCache(Json::Value(Json::objectValue), skipped).empty());
  Json::Value numbers;
  numbers["data"]["10.0.0.1"] = 5;
  EXPECT_TRUE(parseEniTaggerCache(numbers, skipped).empty());
  EXPECT_EQ(skipped, 1u);
}

}  // namespace
}  // namespace eni
