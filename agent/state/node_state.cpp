#include "agent/state/node_state.h"

#include <cstdio>

#include "agent/base/json.h"

namespace eni {

namespace {
// eni-agent.io/state-pending's own version, beside the state's.
constexpr std::int64_t kOverlayVersion = 1;
}  // namespace

std::string_view toString(AttachmentPhase phase) {
  switch (phase) {
    case AttachmentPhase::Attached:
      return "attached";
    case AttachmentPhase::Kept:
      return "kept";
    case AttachmentPhase::Releasing:
      return "releasing";
    case AttachmentPhase::Detached:
      return "detached";
  }
  return "attached";
}

std::optional<AttachmentPhase> attachmentPhaseFrom(std::string_view word) {
  for (auto phase : {AttachmentPhase::Attached, AttachmentPhase::Kept, AttachmentPhase::Releasing,
                     AttachmentPhase::Detached}) {
    if (word == toString(phase)) return phase;
  }
  if (word == "removing") return AttachmentPhase::Releasing;  // host mode's older word
  return std::nullopt;
}

namespace {

// The annotation is written straight to text, in the form jsoncpp writes (keys sorted bytewise,
// no spaces, the same escapes), so that it compares equal with what earlier agents wrote; a
// Json::Value tree per write cost ten times as much, once per update, with every ENI in it.
class StateWriter {
 public:
  explicit StateWriter(std::string& out) : out_(out) {}
  // `{` or `[`, then fields; each field() and item() puts the comma.
  void open(char c) {
    out_ += c;
    first_ = true;
  }
  void close(char c) {
    out_ += c;
    first_ = false;
  }
  StateWriter& field(std::string_view key) {
    comma();
    appendJsonQuoted(out_, key);
    out_ += ':';
    first_ = true;  // what follows is the value, no comma before it
    return *this;
  }
  void item() { comma(); }
  /// A value already encoded.
  void raw(std::string_view text) {
    out_ += text;
    first_ = false;
  }
  void string(std::string_view value) {
    appendJsonQuoted(out_, value);
    first_ = false;
  }
  void number(std::int64_t value) {
    out_ += std::to_string(value);
    first_ = false;
  }
  void strings(const std::vector<std::string>& items) {
    open('[');
    for (const auto& item : items) {
      comma();
      string(item);
    }
    close(']');
  }

 private:
  void comma() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  std::string& out_;
  bool first_ = true;
};

void encodeEniRecord(StateWriter& w, const EniRecord& e) {
  w.open('{');
  if (e.deviceIndex >= 0) w.field("deviceIndex").number(e.deviceIndex);
  if (!e.hash.empty()) w.field("hash").string(e.hash);
  if (!e.mac.empty()) w.field("mac").string(e.mac);
  if (!e.pendingHash.empty()) w.field("pendingHash").string(e.pendingHash);
  if (!e.pendingKeys.empty()) w.field("pendingKeys").strings(e.pendingKeys);
  w.field("pods").open('{');
  for (const auto& [key, p] : e.pods) {
    w.field(key).open('{');
    w.field("ip").string(p.ip);
    w.field("uid").string(p.uid);
    w.close('}');
  }
  w.close('}');
  if (!e.subnet.empty()) w.field("subnet").string(e.subnet);
  w.field("tags").open('{');
  for (const auto& [k, v] : e.tags) w.field(k).string(v);
  w.close('}');
  w.close('}');
}

void encodeAttachment(StateWriter& w, const AttachmentRecord& a) {
  w.open('{');
  w.field("attachmentId").string(a.attachmentId);
  w.field("deviceIndex").number(a.deviceIndex);
  if (a.dpdk) {
    w.field("dpdk").open('{');
    w.field("driver").string(a.dpdk->driver);
    if (!a.dpdk->originalDriver.empty()) w.field("original").string(a.dpdk->originalDriver);
    w.field("pci").string(a.dpdk->pciAddress);
    if (!a.dpdk->resourceName.empty()) w.field("resource").string(a.dpdk->resourceName);
    w.close('}');
  }
  w.field("eni").string(a.eniId);
  w.field("interface").string(a.interfaceName);
  if (!a.link.empty()) w.field("link").string(a.link);
  if (!a.mac.empty()) w.field("mac").string(a.mac);
  w.field("mtu").number(a.mtu);
  w.field("nodeEni").string(a.nodeEni);
  if (!a.specHash.empty()) w.field("specHash").string(a.specHash);
  w.field("state").string(toString(a.phase));
  w.close('}');
}

}  // namespace

namespace {

// Makes `records` hold the text of each of the state's ENI records, encoding only those that
// changed since it last did.
void refreshRecords(const NodeState& state, EncodedEniRecords& records) {
  // Both sorted by ID: one walk reuses what is unchanged, and drops what is gone.
  auto& kept = records.byId;
  auto k = kept.begin();
  for (const auto& [id, e] : state.enis) {
    while (k != kept.end() && k->first < id) k = kept.erase(k);
    if (k == kept.end() || k->first != id) k = kept.try_emplace(k, id);
    if (k->second.second.empty() || !(k->second.first == e)) {
      std::string text;
      StateWriter w(text);
      encodeEniRecord(w, e);
      k->second = {e, std::move(text)};
    }
    ++k;
  }
  kept.erase(k, kept.end());
}

void encodeAttachments(StateWriter& w, const std::vector<AttachmentRecord>& attachments) {
  w.open('[');
  for (const auto& a : attachments) {
    w.item();
    encodeAttachment(w, a);
  }
  w.close(']');
}

}  // namespace

Result<std::string> encodeNodeState(const NodeState& state, EncodedEniRecords* records) {
  std::string text;
  text.reserve(256 + state.enis.size() * 256 + state.attachments.size() * 192);
  StateWriter w(text);
  w.open('{');
  w.field("attachments");
  encodeAttachments(w, state.attachments);
  if (!state.creating.empty()) w.field("creating").strings(state.creating);
  w.field("enis").open('{');
  if (records == nullptr) {
    for (const auto& [id, e] : state.enis) {
      w.field(id);
      encodeEniRecord(w, e);
    }
  } else {
    refreshRecords(state, *records);
    for (const auto& [id, kept] : records->byId) w.field(id).raw(kept.second);
  }
  w.close('}');
  w.field("instanceId").string(state.instanceId);
  if (!state.unownedEnis.empty()) w.field("unownedEnis").strings(state.unownedEnis);
  w.field("version").number(NodeState::kVersion);
  w.close('}');
  if (text.size() > NodeState::kMaxBytes) {
    return fail(ErrorCode::Invalid, "node state is " + std::to_string(text.size()) +
                                        " bytes, over the 64 KiB annotation budget");
  }
  return text;
}

std::string stateDigest(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

NodeState stateWithoutEnis(const NodeState& state) {
  NodeState rest;
  rest.instanceId = state.instanceId;
  rest.attachments = state.attachments;
  rest.unownedEnis = state.unownedEnis;
  rest.creating = state.creating;
  return rest;
}

NodeStateBase nodeStateBase(std::string text, const NodeState& state, EncodedEniRecords* records) {
  NodeStateBase base;
  base.digest = stateDigest(text);
  base.text = std::move(text);
  base.rest = stateWithoutEnis(state);
  EncodedEniRecords own;
  EncodedEniRecords& texts = records == nullptr ? own : *records;
  refreshRecords(state, texts);
  for (const auto& [id, kept] : texts.byId)
    base.enis.emplace_hint(base.enis.end(), id, kept.second);
  return base;
}

std::string encodeNodeStateOverlay(const NodeState& state, const NodeStateBase& base,
                                   EncodedEniRecords& records) {
  refreshRecords(state, records);
  std::string text;
  StateWriter w(text);
  bool changed = false;
  w.open('{');
  if (state.attachments != base.rest.attachments) {
    w.field("attachments");
    encodeAttachments(w, state.attachments);
    changed = true;
  }
  w.field("base").string(base.digest);
  if (state.creating != base.rest.creating) {
    w.field("creating").strings(state.creating);
    changed = true;
  }
  w.field("enis").open('{');
  // Both sorted by ID: what differs, what is new, and null for what is gone.
  auto b = base.enis.begin();
  for (const auto& [id, kept] : records.byId) {
    for (; b != base.enis.end() && b->first < id; ++b) {
      w.field(b->first).raw("null");
      changed = true;
    }
    const bool inBase = b != base.enis.end() && b->first == id;
    if (!inBase || b->second != kept.second) {
      w.field(id).raw(kept.second);
      changed = true;
    }
    if (inBase) ++b;
  }
  for (; b != base.enis.end(); ++b) {
    w.field(b->first).raw("null");
    changed = true;
  }
  w.close('}');
  if (state.instanceId != base.rest.instanceId) {
    w.field("instanceId").string(state.instanceId);
    changed = true;
  }
  if (state.unownedEnis != base.rest.unownedEnis) {
    w.field("unownedEnis").strings(state.unownedEnis);
    changed = true;
  }
  w.field("version").number(kOverlayVersion);
  w.close('}');
  return changed ? text : std::string();
}

std::size_t encodedEniRecordSize(const std::string& id, const EniRecord& record) {
  std::string text;
  StateWriter w(text);
  w.field(id);
  encodeEniRecord(w, record);
  return text.size();
}

namespace {

EniRecord decodeEniRecord(const Json::Value& v) {
  EniRecord e;
  e.mac = stringField(v, "mac");
  e.deviceIndex = intField(v, "deviceIndex", -1);
  e.subnet = stringField(v, "subnet");
  const Json::Value& tags = objectField(v, "tags");
  for (auto t = tags.begin(); t != tags.end(); ++t) {
    if (t->isString()) e.tags[t.name()] = t->asString();
  }
  e.hash = stringField(v, "hash");
  const Json::Value& pods = objectField(v, "pods");
  for (auto p = pods.begin(); p != pods.end(); ++p) {
    e.pods[p.name()] = PodRecord{stringField(*p, "uid"), stringField(*p, "ip")};
  }
  e.pendingHash = stringField(v, "pendingHash");
  for (const auto& k : arrayField(v, "pendingKeys")) {
    if (k.isString()) e.pendingKeys.push_back(k.asString());
  }
  // Written before the compact form: {"key": "value", ..., "eni-tagger.io/hash": "<hash>"}.
  const Json::Value& legacy = objectField(v, "pending");
  for (auto t = legacy.begin(); t != legacy.end(); ++t) {
    if (!t->isString()) continue;
    if (t.name() == "eni-tagger.io/hash")
      e.pendingHash = t->asString();
    else
      e.pendingKeys.push_back(t.name());
  }
  return e;
}

AttachmentRecord decodeAttachment(const Json::Value& a) {
  AttachmentRecord r;
  r.nodeEni = stringField(a, "nodeEni");
  r.eniId = stringField(a, "eni");
  r.attachmentId = stringField(a, "attachmentId");
  r.deviceIndex = intField(a, "deviceIndex", -1);
  r.interfaceName = stringField(a, "interface");
  r.mtu = intField(a, "mtu");
  // Agents before the split wrote the link's state ("Configured", ...) in place of "attached".
  const std::string state = stringField(a, "state");
  r.phase = attachmentPhaseFrom(state).value_or(AttachmentPhase::Attached);
  r.link = stringField(a, "link");
  if (r.link.empty() && !attachmentPhaseFrom(state)) r.link = state;
  r.mac = stringField(a, "mac");
  r.specHash = stringField(a, "specHash");
  if (const Json::Value& d = objectField(a, "dpdk"); !stringField(d, "pci").empty()) {
    r.dpdk = DeviceBinding{stringField(d, "pci"), stringField(d, "driver"),
                           stringField(d, "original"), stringField(d, "resource")};
  }
  return r;
}

std::vector<std::string> strings(const Json::Value& array) {
  std::vector<std::string> out;
  for (const auto& v : array) {
    if (v.isString()) out.push_back(v.asString());
  }
  return out;
}

}  // namespace

Result<NodeState> decodeNodeState(const std::string& text) {
  auto parsed = parseJson(text);
  if (!parsed) return fail(ErrorCode::Invalid, "node state: " + parsed.error().message);
  const Json::Value& root = *parsed;
  const std::int64_t version = intField(root, "version", 0);
  if (version > NodeState::kVersion) {
    return fail(ErrorCode::Conflict, "node state version " + std::to_string(version) +
                                         " was written by a newer eni-agent; this one reads 1.." +
                                         std::to_string(NodeState::kVersion));
  }
  if (version < 1) {
    return fail(ErrorCode::Invalid, "node state version " + std::to_string(version) +
                                        " is not one this agent reads (1.." +
                                        std::to_string(NodeState::kVersion) + ")");
  }
  NodeState state;
  state.instanceId = stringField(root, "instanceId");
  const Json::Value& enis = objectField(root, "enis");
  for (auto it = enis.begin(); it != enis.end(); ++it) state.enis[it.name()] = decodeEniRecord(*it);
  for (const auto& a : arrayField(root, "attachments")) {
    state.attachments.push_back(decodeAttachment(a));
  }
  state.unownedEnis = strings(arrayField(root, "unownedEnis"));
  state.creating = strings(arrayField(root, "creating"));
  return state;
}

Result<void> applyNodeStateOverlay(NodeState& state, std::string_view base,
                                   const std::string& overlay) {
  auto parsed = parseJson(overlay);
  if (!parsed) return fail(ErrorCode::Invalid, "pending node state: " + parsed.error().message);
  const Json::Value& root = *parsed;
  const std::int64_t version = intField(root, "version", 0);
  if (version > kOverlayVersion) {
    return fail(ErrorCode::Conflict, "pending node state version " + std::to_string(version) +
                                         " was written by a newer eni-agent; this one reads 1");
  }
  if (version < 1) {
    return fail(ErrorCode::Invalid, "pending node state version " + std::to_string(version) +
                                        " is not one this agent reads (1)");
  }
  if (stringField(root, "base") != stateDigest(base)) {
    return fail(ErrorCode::NotFound, "the pending node state was written over another " +
                                         std::string(kNodeStateAnnotation) +
                                         " than the one there now (stale)");
  }
  // Wrong types read as absent, as in the state itself.
  const Json::Value& enis = objectField(root, "enis");
  for (auto it = enis.begin(); it != enis.end(); ++it) {
    if (it->isNull())
      state.enis.erase(it.name());
    else if (it->isObject())
      state.enis.insert_or_assign(it.name(), decodeEniRecord(*it));
  }
  if (const Json::Value& a = root["attachments"]; a.isArray()) {
    state.attachments.clear();
    for (const auto& item : a) state.attachments.push_back(decodeAttachment(item));
  }
  if (const Json::Value& c = root["creating"]; c.isArray()) state.creating = strings(c);
  if (const Json::Value& u = root["unownedEnis"]; u.isArray()) state.unownedEnis = strings(u);
  if (const Json::Value& i = root["instanceId"]; i.isString()) state.instanceId = i.asString();
  return {};
}

Result<NodeState> decodeNodeState(const std::string& text, const std::string& overlay,
                                  std::string* ignored) {
  auto state = decodeNodeState(text);
  if (!state || overlay.empty()) return state;
  // An overlay that does not apply leaves the state as it was.
  if (auto applied = applyNodeStateOverlay(*state, text, overlay); !applied && ignored != nullptr)
    *ignored = applied.error().message;
  return state;
}

}  // namespace eni
