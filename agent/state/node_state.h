#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/error.h"

namespace eni {

/// One pod behind an ENI: enough to find its ENI again after a restart (the warm cache) and to
/// clean up after the pod object is gone.
struct PodRecord {
  std::string uid;
  std::string ip;
  bool operator==(const PodRecord&) const = default;
};

/// What the agent knows and owns on one ENI.
struct EniRecord {
  std::string mac;
  std::int64_t deviceIndex = -1;
  std::string subnet;
  std::map<std::string, std::string> tags;  // tags this agent applied and owns, no hash tag
  std::string hash;  // tagHash(tags), as written to the ENI's eni-tagger.io/hash
  std::map<std::string, PodRecord> pods;  // "namespace/name" -> record
  // Write-ahead of a CreateTags that was about to be sent when this was recorded: the hash it
  // writes and the keys it sets (not their values: the ENI shows those once it landed, which its
  // hash tells). Whether it landed is unknown until a Describe shows the ENI; empty when none.
  std::string pendingHash;
  std::vector<std::string> pendingKeys;
  bool hasPending() const { return !pendingHash.empty() || !pendingKeys.empty(); }
  void clearPending() {
    pendingHash.clear();
    pendingKeys.clear();
  }
  bool operator==(const EniRecord&) const = default;
};

/// Where a recorded NodeENI ENI is in its lifecycle. Written as its lower-case name.
enum class AttachmentPhase {
  Attached,   // attached here for the NodeENI that wants it
  Kept,       // no longer wanted, kept attached (its owner has a problem, or its replacement does)
  Releasing,  // being released: detach, wait, delete; recorded until it is gone
  Detached,   // created but never attached (the attach failed); recorded so that it is released
};

/// "attached", "kept", "releasing", "detached".
std::string_view toString(AttachmentPhase phase);
/// The phase a record's word names; also host mode's older word "removing" (Releasing). nullopt
/// for anything else.
std::optional<AttachmentPhase> attachmentPhaseFrom(std::string_view word);

/// An ENI's PCI device handed to a DPDK driver (a NodeENI with enableDPDK): what a release gives
/// back before it detaches the ENI.
struct DeviceBinding {
  std::string pciAddress;      // "0000:00:06.0"
  std::string driver;          // "vfio-pci"
  std::string originalDriver;  // "ena"; empty when the device had none
  std::string resourceName;    // the SR-IOV device plugin resource it is listed under; may be empty
  bool operator==(const DeviceBinding&) const = default;
};

/// One NodeENI attachment on this node (written by the ENI manager).
struct AttachmentRecord {
  std::string nodeEni;
  std::string eniId;
  std::string attachmentId;
  std::int64_t deviceIndex = -1;
  std::string interfaceName;
  std::int64_t mtu = 0;
  AttachmentPhase phase = AttachmentPhase::Attached;
  // The link reconciler's state of the ENI's interface (LinkState's name: "Configured",
  // "Pending", ...) when the agent manages its link; empty otherwise. For readers only.
  std::string link{};
  // The ENI's MAC, so readers (eni-agent status) find its link by MAC. A default initializer,
  // so that brace-initialised records written before it stay warning-free.
  std::string mac{};
  // The fingerprint of the NodeENI's spec (specHashFor) when a pass left this NodeENI fully
  // satisfied on this node: every ENI created, attached and its DeleteOnTermination set. Empty
  // when not. A warm start trusts the record only while the spec still has this fingerprint.
  std::string specHash{};
  // The ENI's device bound to a DPDK driver, when it is.
  std::optional<DeviceBinding> dpdk{};
  bool operator==(const AttachmentRecord&) const = default;
};

/// The versioned state kept in the Node annotation eni-agent.io/state (or host mode's
/// state.json): the warm-start cache and the record of what the agent owns.
struct NodeState {
  static constexpr int kVersion = 1;
  static constexpr std::size_t kMaxBytes = std::size_t{64} * 1024;
  std::string instanceId;
  std::map<std::string, EniRecord> enis;  // ENI ID -> record
  std::vector<AttachmentRecord> attachments;
  // ENIs attached to this instance that EC2 showed without eni-agent's ownership tags (the
  // primary, VPC CNI's, ...), recorded by the ENI manager so that a warm start need not read EC2
  // on their account. Sorted.
  std::vector<std::string> unownedEnis;
  // The ENI manager's write-ahead: NodeENIs whose ENIs it may be creating. Recorded before a
  // CreateNetworkInterface is sent and cleared by the next pass that ends with nothing left to do,
  // so a restart after a kill in between reads EC2 (and finds the ENI by its ownership tags)
  // instead of trusting the attachment records. Sorted.
  std::vector<std::string> creating;
  bool operator==(const NodeState&) const = default;
};

inline constexpr const char* kNodeStateAnnotation = "eni-agent.io/state";
/// What changed since eni-agent.io/state was last written, on a node whose state is large: a JSON
/// merge patch over that state (see encodeNodeStateOverlay). Absent when nothing did.
inline constexpr const char* kNodeStatePendingAnnotation = "eni-agent.io/state-pending";

/// The text of each ENI record as the last encodeNodeState with it wrote it, beside the record:
/// a record unchanged since is not encoded again (a pass changes a few of a node's hundred).
struct EncodedEniRecords {
  std::map<std::string, std::pair<EniRecord, std::string>> byId;
};

/// Compact JSON. Fails with Invalid when the result would exceed 64 KiB. With `records`, reuses
/// and updates the texts kept there; the result is the same.
[[nodiscard]] Result<std::string> encodeNodeState(const NodeState& state,
                                                  EncodedEniRecords* records = nullptr);

/// `state` without its ENI records: its instance, attachments, unowned ENIs and creating.
NodeState stateWithoutEnis(const NodeState& state);

/// What eni-agent.io/state holds, as the overlay is written over it.
struct NodeStateBase {
  std::string text;    // the annotation's value; empty when there is none
  std::string digest;  // stateDigest(text): what an overlay over this text names as its base
  NodeState rest;      // the state it holds, without its ENIs
  std::map<std::string, std::string> enis;  // ENI ID -> its record as encodeNodeState writes it
};
/// The base for `text`, which decodes to `state`. With `records`, reuses and updates the record
/// texts kept there (after a write, those the write's encoding just made).
NodeStateBase nodeStateBase(std::string text, const NodeState& state,
                            EncodedEniRecords* records = nullptr);
/// 16 hex digits (FNV-1a, 64 bits) naming a state's text.
std::string stateDigest(std::string_view text);

/// The eni-agent.io/state-pending value that turns `base` into `state`: a JSON merge patch (RFC
/// 7386) over base.text, with the ENI records that differ (null for one that is gone), the other
/// fields only when they differ, and "base" (base.digest) and "version" beside them. "" when
/// `state` is what `base` holds. Reuses and updates the record texts in `records`. Costs what the
/// records that differ take, plus one comparison per record.
std::string encodeNodeStateOverlay(const NodeState& state, const NodeStateBase& base,
                                   EncodedEniRecords& records);
/// Applies an eni-agent.io/state-pending value to `state`, which was decoded from `base`.
/// Invalid when it does not parse, NotFound when it was written over another base (it is stale:
/// someone else wrote the state since), Conflict for a newer version. `state` is unchanged then.
[[nodiscard]] Result<void> applyNodeStateOverlay(NodeState& state, std::string_view base,
                                                 const std::string& overlay);
/// The bytes the record of ENI `id` takes in encodeNodeState's text (`"id":{...}`, without the
/// comma that separates it from its neighbours): a state's size changes by the difference when
/// one record changes.
std::size_t encodedEniRecordSize(const std::string& id, const EniRecord& record);
/// Reads any version up to kVersion; unknown fields are ignored, wrong types read as absent.
/// Invalid for malformed JSON; Conflict for a newer version, written by a newer agent, which this
/// one must neither trust nor overwrite.
[[nodiscard]] Result<NodeState> decodeNodeState(const std::string& text);
/// The state a Node's two annotations hold: eni-agent.io/state decoded, with
/// eni-agent.io/state-pending applied when it is there and over that state. An overlay that does
/// not apply is left out, and `ignored` (when given) says why; the state is an error only when
/// eni-agent.io/state is.
[[nodiscard]] Result<NodeState> decodeNodeState(const std::string& text, const std::string& overlay,
                                                std::string* ignored = nullptr);

}  // namespace eni
