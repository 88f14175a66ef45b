#include "agent/tagger/eni_tagger_cache.h"

#include "agent/base/json.h"

namespace eni {
namespace {

bool isEniId(const std::string& id) {
  return id.size() > 4 && id.size() <= 64 && id.rfind("eni-", 0) == 0 &&
         id.find_first_not_of("0123456789abcdef", 4) == std::string::npos;
}

}  // namespace

std::map<std::string, EniTaggerCacheEntry> parseEniTaggerCache(const Json::Value& configMap,
                                                               std::size_t& skipped) {
  std::map<std::string, EniTaggerCacheEntry> out;
  const Json::Value data = objectField(configMap, "data");
  if (!data.isObject()) return out;
  for (const auto& ip : data.getMemberNames()) {
    const Json::Value& raw = data[ip];
    auto value = raw.isString() ? parseJson(raw.asString()) : Result<Json::Value>(Json::Value());
    EniTaggerCacheEntry entry;
    if (value && value->isObject()) {
      entry.eniId = stringField(objectField(*value, "info"), "ID");
      entry.podUid = stringField(*value, "pod_uid");
    }
    if (!isEniId(entry.eniId) || entry.podUid.empty()) {
      ++skipped;
      continue;
    }
    out[ip] = std::move(entry);
  }
  return out;
}

std::string cachedEniFor(const std::map<std::string, EniTaggerCacheEntry>& entries,
                         const std::string& ip, const std::string& uid) {
  auto it = entries.find(ip);
  if (it == entries.end() || uid.empty() || it->second.podUid != uid) return "";
  return it->second.eniId;
}

}  // namespace eni
