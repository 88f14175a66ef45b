#pragma once

// k8s-eni-tagger's ConfigMap eni-tagger-cache, read once at start: pod IP -> the ENI that tool
// found for it. Only hints: an entry counts for the pod with that IP and UID alone, and the ENI
// it names is verified like the one a pod-eni annotation names before anything is written.
// eni-agent never writes or deletes the ConfigMap. Pure.
#include <cstddef>
#include <map>
#include <string>

#include <json/value.h>

namespace eni {

inline constexpr const char* kEniTaggerCacheName = "eni-tagger-cache";

struct EniTaggerCacheEntry {
  std::string eniId;  // info.ID
  std::string podUid;
};

/// The ConfigMap's `data` as entries by pod IP. Each value is k8s-eni-tagger's JSON
/// {"info":{"ID":"eni-...","SubnetID":"subnet-...",...},"pod_uid":"..."}; a value of another form
/// (not JSON, no ENI ID of the form eni-<hex>, no pod UID) is skipped and counted in `skipped`.
std::map<std::string, EniTaggerCacheEntry> parseEniTaggerCache(const Json::Value& configMap,
                                                               std::size_t& skipped);

/// The ENI the entries name for the pod with this IP and UID, or "".
std::string cachedEniFor(const std::map<std::string, EniTaggerCacheEntry>& entries,
                         const std::string& ip, const std::string& uid);

}  // namespace eni
