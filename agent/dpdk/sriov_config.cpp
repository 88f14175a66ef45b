#include "agent/dpdk/sriov_config.h"

#include <algorithm>

#include "agent/base/files.h"
#include "agent/base/json.h"

namespace eni {
namespace {

bool validName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

bool validPrefix(const std::string& s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
}

Result<void> checkShape(const Json::Value& config) {
  if (!config.isObject() || (config.isMember("resourceList") && !config["resourceList"].isArray()))
    return fail(ErrorCode::Invalid,
                "not an SR-IOV device plugin config: an object with an array "
                "\"resourceList\" was expected");
  return {};
}

// Adds `value` to the array `key` of `object` unless it is there already.
void addUnique(Json::Value& object, const char* key, const std::string& value) {
  Json::Value& list = object[key];
  if (!list.isArray()) list = Json::Value(Json::arrayValue);
  for (const auto& v : list) {
    if (v.isString() && v.asString() == value) return;
  }
  list.append(value);
}

}  // namespace

Result<SriovDevice> sriovResource(const std::string& dpdkResourceName) {
  SriovDevice d;
  const auto slash = dpdkResourceName.find('/');
  d.resourceName =
      slash == std::string::npos ? dpdkResourceName : dpdkResourceName.substr(slash + 1);
  if (slash != std::string::npos) d.resourcePrefix = dpdkResourceName.substr(0, slash);
  if (!validName(d.resourceName) || (slash != std::string::npos && !validPrefix(d.resourcePrefix)))
    return fail(ErrorCode::Invalid, "dpdkResourceName \"" + dpdkResourceName +
                                        "\" must be \"prefix/name\" or \"name\" (e.g. "
                                        "intel.com/intel_sriov_dpdk)");
  return d;
}

Result<Json::Value> withSriovDevice(Json::Value config, const SriovDevice& device) {
  if (config.isNull()) config = Json::Value(Json::objectValue);
  if (auto ok = checkShape(config); !ok) return fail(ok.error());
  Json::Value& list = config["resourceList"];
  if (!list.isArray()) list = Json::Value(Json::arrayValue);
  for (auto& resource : list) {
    if (!resource.isObject() || stringField(resource, "resourceName") != device.resourceName ||
        stringField(resource, "resourcePrefix") != device.resourcePrefix)
      continue;
    Json::Value& selectors = resource["selectors"];
    if (!selectors.isObject()) selectors = Json::Value(Json::objectValue);
    addUnique(selectors, "pciAddresses", device.pciAddress);
    addUnique(selectors, "drivers", device.driver);
    return config;
  }
  Json::Value resource(Json::objectValue);
  if (!device.resourcePrefix.empty()) resource["resourcePrefix"] = device.resourcePrefix;
  resource["resourceName"] = device.resourceName;
  addUnique(resource["selectors"], "drivers", device.driver);
  addUnique(resource["selectors"], "pciAddresses", device.pciAddress);
  list.append(resource);
  return config;
}

Result<Json::Value> withoutSriovDevice(Json::Value config, const std::string& pciAddress) {
  if (config.isNull()) return config;
  if (auto ok = checkShape(config); !ok) return fail(ok.error());
  if (!config.isMember("resourceList")) return config;
  Json::Value kept(Json::arrayValue);
  for (const auto& resource : config["resourceList"]) {
    const Json::Value& addresses = objectField(resource, "selectors")["pciAddresses"];
    if (!addresses.isArray()) {
      kept.append(resource);
      continue;
    }
    Json::Value left(Json::arrayValue);
    for (const auto& a : addresses) {
      if (!(a.isString() && a.asString() == pciAddress)) left.append(a);
    }
    if (left.empty() && !addresses.empty()) continue;  // it selected only this device
    Json::Value copy = resource;
    copy["selectors"]["pciAddresses"] = left;
    kept.append(copy);
  }
  config["resourceList"] = kept;
  return config;
}

Result<Json::Value> SriovConfigFile::read() const {
  auto text = readFile(path_);
  if (!text) {
    if (text.error().code == ErrorCode::NotFound) return Json::Value(Json::objectValue);
    return fail(text.error());
  }
  auto config = parseJson(*text);
  if (!config)
    return fail(ErrorCode::Invalid, path_ + ": " + config.error().message + "; left unchanged");
  if (auto ok = checkShape(*config); !ok)
    return fail(ErrorCode::Invalid, path_ + ": " + ok.error().message + "; left unchanged");
  return config;
}

Result<void> SriovConfigFile::write(const Json::Value& config) const {
  return writeFileAtomically(path_, toJson(config) + "\n");
}

Result<void> SriovConfigFile::change(
    const std::function<Result<Json::Value>(Json::Value)>& edit) const {
  auto config = read();
  if (!config) return fail(config.error());
  auto changed = edit(*config);
  if (!changed) return fail(changed.error());
  if (*changed == *config) return {};
  return write(*changed);
}

Result<void> SriovConfigFile::add(const SriovDevice& device) const {
  return change([&](Json::Value config) { return withSriovDevice(std::move(config), device); });
}

Result<void> SriovConfigFile::remove(const std::string& pciAddress) const {
  return change(
      [&](Json::Value config) { return withoutSriovDevice(std::move(config), pciAddress); });
}

}  // namespace eni
