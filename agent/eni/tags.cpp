#include "agent/eni/tags.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include <json/value.h>

#include "agent/base/json.h"
#include "agent/base/strings.h"

namespace eni {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool allowedChar(unsigned char c) {
  return std::isalnum(c) || c == ' ' || c == '+' || c == '=' || c == '.' || c == '_' || c == ':' ||
         c == '/' || c == '@' || c == '-';
}

tl::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::Invalid, std::move(message));
}

Result<void> validateTag(const std::string& key, const std::string& value) {
  if (key.empty()) return invalid("a tag key is empty");
  if (key.size() > TagLimits::kMaxKeyLength) {
    return invalid("tag key \"" + key.substr(0, 40) + "...\" is " + std::to_string(key.size()) +
                   " characters; the limit is 127");
  }
  if (value.size() > TagLimits::kMaxValueLength) {
    return invalid("the value of tag \"" + key + "\" is " + std::to_string(value.size()) +
                   " characters; the limit is 255");
  }
  for (const auto* text : {&key, &value}) {
    for (unsigned char c : *text) {
      if (!allowedChar(c)) {
        static constexpr char kHex[] = "0123456789abcdef";
        std::string shown(1, static_cast<char>(c));
        if (!std::isprint(c)) {
          shown = "byte 0x";
          shown += kHex[c >> 4];
          shown += kHex[c & 15];
        }
        std::string why = text == &key ? "tag key \"" : "the value of tag \"";
        why.append(key).append("\" contains \"").append(shown);
        why.append("\"; allowed are letters, digits, spaces and + = . _ : / @ -");
        return invalid(why);
      }
    }
  }
  if (auto reserved = reservedTagReason(key, value); !reserved.empty()) return invalid(reserved);
  return {};
}

using RawTags = std::vector<std::pair<std::string, std::string>>;

Result<RawTags> parseJsonForm(std::string_view text) {
  auto parsed = parseJson(
      text,
      {.rejectDuplicateKeys = true, .rejectTrailingText = true, .strict = true, .maxDepth = 20});
  if (!parsed) {
    if (parsed.error().message.find("Duplicate key") != std::string::npos) {
      return invalid("duplicate tag key in the JSON: " + parsed.error().message);
    }
    return fail(parsed.error());
  }
  const Json::Value& root = *parsed;
  if (!root.isObject())
    return invalid("the JSON must be an object of string values, e.g. {\"Team\":\"Platform\"}");
  RawTags out;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!it->isString()) {
      return invalid("the value of tag \"" + it.name() + "\" must be a JSON string, e.g. \"" +
                     it.name() + "\":\"1234\"");
    }
    out.emplace_back(it.name(), it->asString());
  }
  return out;
}

Result<RawTags> parsePairForm(std::string_view text) {
  RawTags out;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const std::string_view pair =
        trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (pair.empty()) {
      return invalid("an empty entry in \"" + std::string(text.substr(0, 80)) +
                     "\"; write Key=Value pairs separated by single commas");
    }
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return invalid("\"" + std::string(pair.substr(0, 80)) +
                     "\" is not Key=Value; write e.g. Team=Platform,CostCenter=1234 or JSON");
    }
    out.emplace_back(std::string(trim(pair.substr(0, eq))), std::string(trim(pair.substr(eq + 1))));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::string reservedTagReason(const std::string& key, const std::string& value) {
  const std::string lowered = lower(key);
  auto startsWith = [&lowered](std::string_view prefix) { return lowered.rfind(prefix, 0) == 0; };
  if (startsWith("aws:")) return "tag key \"" + key + "\" uses the reserved prefix aws:";
  if (startsWith("kubernetes.io/cluster/"))
    return "tag key \"" + key + "\" uses the reserved prefix kubernetes.io/cluster/";
  if (key == kHashTagKey) return std::string("tag key ") + kHashTagKey + " is the agent's own";
  // Keys that tell an ENI's owner: a pod that could set them could make a tool that trusts them
  // (eni-agent's ENI manager, aws-multi-eni-controller, VPC CNI) adopt, detach or delete an ENI.
  static const std::vector<std::pair<std::string_view, std::string_view>> kOwnerPrefixes = {
      {"eni-agent.io/", "eni-agent's ENI ownership"},
      {"node.k8s.amazonaws.com/", "VPC CNI's ENI ownership"},
      {"vpcresources.k8s.aws/", "the VPC resource controller's branch ENIs"},
      {"eks:", "EKS"}};
  for (const auto& [prefix, owner] : kOwnerPrefixes) {
    if (startsWith(prefix)) {
      return "tag key \"" + key + "\" uses the prefix " + std::string(prefix) + ", reserved for " +
             std::string(owner) + "; choose another key";
    }
  }
  if (lowered == "node" || lowered == "nodeeni" || lowered == "subnetid") {
    return "tag key \"" + key +
           "\" is reserved: the ENI manager reads it to tell which ENIs it owns; choose another "
           "key (for example with --tag-namespace)";
  }
  if (lowered == "name" && lower(value).rfind("nodeeni-", 0) == 0) {
    return "tag Name=" + value +
           " has the form of the ENI manager's own ENI names (nodeeni-...), which it reads to "
           "tell which ENIs it owns; choose another value";
  }
  return {};
}

std::string TagNamespace::apply(const std::string& key, const std::string& podNamespace) const {
  if (prefix.empty()) return key;
  // k8s-eni-tagger's only working value is "enable"; "pod-namespace" is eni-agent's older name.
  if (prefix == "enable" || prefix == "pod-namespace") return podNamespace + ":" + key;
  return prefix + ":" + key;
}

Result<TagSet> parseTagAnnotation(std::string_view value, const TagNamespace& ns,
                                  const std::string& podNamespace) {
  if (value.size() > TagLimits::kMaxAnnotationBytes) {
    return invalid("the annotation is " + std::to_string(value.size()) +
                   " bytes; the limit is 10000");
  }
  const std::string_view text = trim(value);
  if (text.empty()) return TagSet{};
  auto raw =
      (text.front() == '{' || text.front() == '[') ? parseJsonForm(text) : parsePairForm(text);
  if (!raw) return fail(raw.error());
  if (raw->size() > TagLimits::kMaxTags) {
    return invalid(std::to_string(raw->size()) +
                   " tags; the limit is 49 (EC2 allows 50 per ENI and eni-agent's " + kHashTagKey +
                   " takes one)");
  }
  TagSet tags;
  for (auto& [key, val] : *raw) {
    const std::string full = ns.apply(key, podNamespace);
    if (auto ok = validateTag(full, val); !ok) return fail(ok.error());
    if (!tags.emplace(full, val).second) return invalid("tag key \"" + full + "\" appears twice");
  }
  return tags;
}

std::string sha256Hex(std::string_view input, std::size_t bytes) {
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up in its providers on every
  // digest, which cost more than hashing a few tags (the tagger hashes per pod and ENI per pass).
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest, &length,
             kSha256 != nullptr ? kSha256 : EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (std::size_t i = 0; i < bytes && i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

std::string tagHash(const TagSet& tags) {
  std::string canonical;
  for (const auto& [key, value] : tags) canonical.append(key).append("=").append(value).append(",");
  return sha256Hex(canonical, 8);
}

TagDiff diffTags(const TagSet& applied, const TagSet& desired) {
  TagDiff diff;
  for (const auto& [key, value] : desired) {
    auto it = applied.find(key);
    if (it == applied.end() || it->second != value) diff.toSet.emplace(key, value);
  }
  for (const auto& [key, value] : applied) {
    if (desired.count(key) == 0) diff.toDelete.push_back(key);
  }
  return diff;
}

std::string tagsToJson(const TagSet& tags) {
  // What toJson() writes for the same object (keys sorted bytewise, its escapes), without a
  // Json::Value: this runs per pod in every pass.
  std::string out = "{";
  for (const auto& [key, value] : tags) {
    if (out.size() > 1) out += ',';
    appendJsonQuoted(out, key);
    out += ':';
    appendJsonQuoted(out, value);
  }
  out += '}';
  return out;
}

}  // namespace eni
