#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace eni {

/// Where one tag pass stands between the start of its plan and the end of its writes.
enum class PassStage {
  Planning,   // planning, from the state the passes before it leave when all their writes land
  Recording,  // its write-ahead is in (or waits for) a node-state patch; nothing sent yet
  Stored,     // a landed patch records it (or it needs no record): it writes once it is oldest
  Writing,    // its writes are out
  Stale,      // planned on a pass before it that did not land all it planned: writes nothing
};

/// The order of the tagger's pipelined passes: the next pass plans while the previous ones'
/// write-aheads and writes are in flight, and each pass writes only when a landed patch records
/// its write-ahead and every pass before it has finished. A pass before it that does not land
/// everything it planned (a refused write-ahead, a failed write) makes every later pass Stale: they
/// planned on its success, so they write nothing and run again. Pure bookkeeping, loop thread only;
/// table-tested in tests/unit/tag_pipeline_test.cpp.
class TagPipeline {
 public:
  using Id = std::uint64_t;

  /// A new pass, Planning; it plans from the newest live pass's outcome (newest()).
  Id start();
  /// The plan is made: Recording when it sends CreateTags (its write-ahead goes into the store),
  /// else Stored. False when it went Stale meanwhile: it is removed and must write nothing.
  bool planned(Id id, bool needsRecord);
  /// The patch carrying its write-ahead answered. Stored when it landed; else the pass and every
  /// later one are removed (returned, this one first): none of them may write.
  std::vector<Id> recorded(Id id, bool stored);
  /// The oldest pass when it may write now (Stored, none Writing); it becomes Writing.
  std::optional<Id> nextWrite();
  /// Its writes are done and it is removed; unless `clean` (every write landed), every later
  /// pass is removed too (returned), but a Planning one, which stays Stale until planned().
  std::vector<Id> finished(Id id, bool clean);

  std::optional<PassStage> stage(Id id) const;
  /// The newest pass that is not Stale, if any: the next pass plans on its outcome.
  std::optional<Id> newest() const;
  /// Whether a pass after `id` has put its write-ahead into the store (Recording or further):
  /// the store then holds that pass's state, which already includes `id`'s outcome.
  bool recordedAfter(Id id) const;
  /// Whether a pass before `id` is still in the pipeline.
  bool olderThan(Id id) const;
  bool empty() const { return passes_.empty(); }
  std::size_t size() const { return passes_.size(); }

 private:
  std::vector<Id> dropFrom(std::map<Id, PassStage>::iterator it);

  std::map<Id, PassStage> passes_;  // by id: the order they started in
  Id next_ = 1;
};

}  // namespace eni
