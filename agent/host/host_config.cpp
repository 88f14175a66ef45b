#include "agent/host/host_config.h"

#include <algorithm>
#include <map>
#include <set>

#include "agent/base/files.h"
#include "agent/base/json.h"

namespace eni {
namespace {

constexpr std::size_t kMaxConfigBytes = 1024 * 1024;
constexpr std::size_t kMaxDescription = 255;

const std::set<std::string>& rootKeys() {
  static const std::set<std::string> keys{"interfaces", "tags"};
  return keys;
}

const std::set<std::string>& interfaceKeys() {
  static const std::set<std::string> keys{
      "subnetID",    "subnetName",          "securityGroupIDs", "deviceIndex",  "mtu",
      "description", "deleteOnTermination", "configureAddress", "policyRouting"};
  return keys;
}

std::string joined(const std::set<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

/// A key in a different case than the one we know: the likeliest typo (subnetId for subnetID).
std::string caseHint(const std::string& key, const std::set<std::string>& known) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
  };
  for (const auto& k : known) {
    if (lower(k) == lower(key)) return " (did you mean \"" + k + "\"?)";
  }
  return "";
}

std::string typeName(const Json::Value& v) {
  switch (v.type()) {
    case Json::nullValue:
      return "null";
    case Json::intValue:
    case Json::uintValue:
    case Json::realValue:
      return "a number";
    case Json::stringValue:
      return "a string";
    case Json::booleanValue:
      return "a boolean";
    case Json::arrayValue:
      return "a list";
    case Json::objectValue:
      return "an object";
  }
  return "a value";
}

class Checker {
 public:
  void problem(std::string text) { problems_.push_back(std::move(text)); }
  bool ok() const { return problems_.empty(); }
  std::string message() const {
    std::string out;
    for (const auto& p : problems_) out += (out.empty() ? "" : "; ") + p;
    return out;
  }

  void unknownKeys(const Json::Value& object, const std::set<std::string>& known,
                   const std::string& where) {
    for (const auto& name : object.getMemberNames()) {
      if (known.count(name) != 0) continue;
      problem((where.empty() ? "" : where + ": ") + "unknown key \"" + name + "\"" +
              caseHint(name, known) + "; the known keys are " + joined(known));
    }
  }

  bool boolean(const Json::Value& object, const char* key, const std::string& where, bool& out) {
    if (!object.isMember(key)) return true;
    const Json::Value& v = object[key];
    if (!v.isBool()) {
      problem(where + "." + key + ": must be true or false, not " + typeName(v));
      return false;
    }
    out = v.asBool();
    return true;
  }

  bool integer(const Json::Value& object, const char* key, const std::string& where,
               std::int64_t& out) {
    if (!object.isMember(key)) return false;
    const Json::Value& v = object[key];
    if (!v.isIntegral() || !v.isInt64()) {
      problem(where + "." + key + ": must be a whole number, not " +
              (v.isString() ? "the string \"" + v.asString() + "\"" : typeName(v)));
      return false;
    }
    out = v.asInt64();
    return true;
  }

  bool string(const Json::Value& object, const char* key, const std::string& where,
              std::string& out) {
    if (!object.isMember(key)) return false;
    const Json::Value& v = object[key];
    if (!v.isString()) {
      problem(where + "." + key + ": must be a string, not " + typeName(v));
      return false;
    }
    out = v.asString();
    return true;
  }

 private:
  std::vector<std::string> problems_;
};

void parseSubnet(Checker& check, const Json::Value& v, const std::string& where,
                 HostInterface& out) {
  const bool hasId = check.string(v, "subnetID", where, out.subnetId);
  const bool hasName = check.string(v, "subnetName", where, out.subnetName);
  if (hasId && hasName) {
    check.problem(where + ": set subnetID or subnetName, not both");
  } else if (!v.isMember("subnetID") && !v.isMember("subnetName")) {
    check.problem(where + ": no subnet; set subnetID (\"subnet-...\") or subnetName");
  }
  if (hasId && out.subnetId.rfind("subnet-", 0) != 0) {
    check.problem(where + ".subnetID: \"" + out.subnetId +
                  "\" is not a subnet ID; it starts with \"subnet-\"");
  }
  if (hasName && out.subnetName.empty()) {
    check.problem(where + ".subnetName: is empty; give the subnet's Name tag");
  }
}

void parseGroups(Checker& check, const Json::Value& v, const std::string& where,
                 HostInterface& out) {
  if (!v.isMember("securityGroupIDs")) return;
  const Json::Value& groups = v["securityGroupIDs"];
  if (!groups.isArray()) {
    check.problem(where + ".securityGroupIDs: must be a list of \"sg-...\" strings, not " +
                  typeName(groups));
    return;
  }
  for (Json::ArrayIndex i = 0; i < groups.size(); ++i) {
    const std::string at = where + ".securityGroupIDs[" + std::to_string(i) + "]";
    if (!groups[i].isString()) {
      check.problem(at + ": must be a string, not " + typeName(groups[i]));
    } else if (groups[i].asString().rfind("sg-", 0) != 0) {
      check.problem(at + ": \"" + groups[i].asString() +
                    "\" is not a security group ID; it starts with \"sg-\"");
    } else {
      out.securityGroupIds.push_back(groups[i].asString());
    }
  }
}

HostInterface parseInterface(Checker& check, const Json::Value& v, const std::string& where) {
  HostInterface out;
  if (!v.isObject()) {
    check.problem(where + ": must be an object such as {\"subnetID\": \"subnet-...\"}, not " +
                  typeName(v));
    return out;
  }
  check.unknownKeys(v, interfaceKeys(), where);
  parseSubnet(check, v, where, out);
  parseGroups(check, v, where, out);
  std::int64_t index = 1;
  if (check.integer(v, "deviceIndex", where, index)) {
    if (index < 1) {
      check.problem(where + ".deviceIndex: " + std::to_string(index) +
                    " is below 1 (0 is the primary ENI)");
    } else if (index > 255) {
      check.problem(where + ".deviceIndex: " + std::to_string(index) + " is above 255");
    }
  }
  out.deviceIndex = index;
  std::int64_t mtu = 0;
  if (check.integer(v, "mtu", where, mtu)) {
    if (mtu < 68 || mtu > 9001) {
      check.problem(where + ".mtu: " + std::to_string(mtu) + " is outside 68-9001");
    } else {
      out.mtu = static_cast<std::uint32_t>(mtu);
    }
  }
  if (check.string(v, "description", where, out.description) &&
      out.description.size() > kMaxDescription) {
    check.problem(where + ".description: " + std::to_string(out.description.size()) +
                  " characters; the limit is 255");
  }
  check.boolean(v, "deleteOnTermination", where, out.deleteOnTermination);
  check.boolean(v, "configureAddress", where, out.configureAddress);
  check.boolean(v, "policyRouting", where, out.policyRouting);
  return out;
}

}  // namespace

std::string HostInterface::key() const { return "host-" + std::to_string(deviceIndex); }

Result<HostConfig> parseHostConfig(std::string_view text) {
  if (text.size() > kMaxConfigBytes) {
    return fail(ErrorCode::Invalid,
                "the file is " + std::to_string(text.size()) + " bytes; the limit is 1 MiB");
  }
  auto parsed = parseJson(text, {.rejectDuplicateKeys = true, .rejectTrailingText = true});
  if (!parsed) return fail(parsed.error());
  const Json::Value& root = *parsed;
  if (!root.isObject()) {
    return fail(ErrorCode::Invalid,
                "must be a JSON object with \"interfaces\" and \"tags\", not " + typeName(root));
  }
  Checker check;
  HostConfig config;
  check.unknownKeys(root, rootKeys(), "");
  if (root.isMember("interfaces")) {
    const Json::Value& list = root["interfaces"];
    if (!list.isArray()) {
      check.problem("interfaces: must be a list of objects, not " + typeName(list));
    } else {
      std::map<std::int64_t, std::size_t> byIndex;
      for (Json::ArrayIndex i = 0; i < list.size(); ++i) {
        const std::string where = "interfaces[" + std::to_string(i) + "]";
        HostInterface iface = parseInterface(check, list[i], where);
        auto [it, fresh] = byIndex.emplace(iface.deviceIndex, i);
        if (!fresh) {
          check.problem(where + ".deviceIndex: " + std::to_string(iface.deviceIndex) +
                        " is already used by interfaces[" + std::to_string(it->second) +
                        "]; give each interface its own deviceIndex");
        }
        config.interfaces.push_back(std::move(iface));
      }
    }
  }
  if (root.isMember("tags")) {
    const Json::Value& tags = root["tags"];
    // Exactly the pod annotation's parser: the object form, or the Key=Value,... string form.
    Result<TagSet> parsedTags = fail(ErrorCode::Invalid, "");
    if (tags.isObject()) {
      parsedTags = parseTagAnnotation(toJson(tags));
    } else if (tags.isString()) {
      parsedTags = parseTagAnnotation(tags.asString());
    } else {
      check.problem("tags: must be an object of strings such as {\"Team\": \"Platform\"}, not " +
                    typeName(tags));
    }
    if (parsedTags) {
      config.tags = std::move(*parsedTags);
    } else if (!parsedTags.error().message.empty()) {
      check.problem("tags: " + parsedTags.error().message);
    }
  }
  if (!check.ok()) return fail(ErrorCode::Invalid, check.message());
  return config;
}

Result<HostConfig> loadHostConfig(const std::string& path) {
  auto text = readFile(path);
  if (!text) return fail(text.error());
  auto config = parseHostConfig(*text);
  if (!config) {
    Error e = config.error();
    e.message = path + ": " + e.message;
    return fail(std::move(e));
  }
  return config;
}

}  // namespace eni
