#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/error.h"

namespace eni {

/// Tag key -> value, sorted by key (byte order), which the hash relies on.
using TagSet = std::map<std::string, std::string>;

/// The ENI tag that records the hash of the tags the agent applied (k8s-eni-tagger's key).
inline constexpr const char* kHashTagKey = "eni-tagger.io/hash";

struct TagLimits {
  static constexpr std::size_t kMaxAnnotationBytes = 10000;
  // EC2 allows 50 tags per resource; the hash tag takes one of them.
  static constexpr std::size_t kMaxTagsPerEni = 50;
  static constexpr std::size_t kMaxTags = kMaxTagsPerEni - 1;
  static constexpr std::size_t kMaxKeyLength = 127;
  static constexpr std::size_t kMaxValueLength = 255;
};

/// How annotation keys become ENI tag keys: --tag-namespace.
struct TagNamespace {
  std::string prefix;  // "", a literal such as "acme", or "pod-namespace"
  /// The tag key for `key` on a pod in `podNamespace`.
  std::string apply(const std::string& key, const std::string& podNamespace) const;
};

/// Why `key` (with `value`) may not come from a pod, or "" when it may: the prefixes AWS and
/// Kubernetes reserve, the agent's own hash, and every key that eni-agent,
/// aws-multi-eni-controller, VPC CNI or the VPC resource controller read to decide who owns an ENI
/// (`eni-agent.io/`, `Node`, `NodeENI`, `SubnetID`, a `Name` of the form `nodeeni-...`,
/// `node.k8s.amazonaws.com/`, `vpcresources.k8s.aws/`, `eks:`). Case-insensitive.
std::string reservedTagReason(const std::string& key, const std::string& value);

/// Parses the tags annotation, strict JSON (`{"Team":"Platform"}`) or `Team=Platform,Cost=1`
/// with whitespace trimmed, applies the namespace and validates the result: at most 49 tags (EC2's
/// 50 per ENI less the hash), keys of 1-127 characters, values of at most 255, characters from
/// [a-zA-Z0-9 +=._:/@-], no reserved key (reservedTagReason), no duplicate keys, at most 10,000
/// bytes. The error is Invalid and says what to fix. The same code serves `eni-agent
/// validate-tags`.
[[nodiscard]] Result<TagSet> parseTagAnnotation(std::string_view value, const TagNamespace& ns = {},
                                                const std::string& podNamespace = "");

/// First 16 hex characters of SHA-256 over the sorted "key=value," pairs, as k8s-eni-tagger.
std::string tagHash(const TagSet& tags);
/// The first `bytes` bytes of SHA-256(`input`), in lower-case hex (the tag hash, ClientTokens and
/// NodeENI spec fingerprints).
std::string sha256Hex(std::string_view input, std::size_t bytes);

/// The minimal writes from `applied` to `desired`: keys to set (new or changed values) and keys
/// to delete (applied, no longer desired).
struct TagDiff {
  TagSet toSet;
  std::vector<std::string> toDelete;
  bool empty() const { return toSet.empty() && toDelete.empty(); }
};
TagDiff diffTags(const TagSet& applied, const TagSet& desired);

/// Compact JSON of a tag set, keys sorted: the last-applied-tags annotation's form.
std::string tagsToJson(const TagSet& tags);

}  // namespace eni
