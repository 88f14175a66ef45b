#include "agent/tagger/tag_pipeline.h"

namespace eni {

TagPipeline::Id TagPipeline::start() {
  const Id id = next_++;
  passes_[id] = PassStage::Planning;
  return id;
}

bool TagPipeline::planned(Id id, bool needsRecord) {
  auto it = passes_.find(id);
  if (it == passes_.end()) return false;
  if (it->second == PassStage::Stale) {
    passes_.erase(it);
    return false;
  }
  it->second = needsRecord ? PassStage::Recording : PassStage::Stored;
  return true;
}

std::vector<TagPipeline::Id> TagPipeline::recorded(Id id, bool stored) {
  auto it = passes_.find(id);
  if (it == passes_.end() || it->second != PassStage::Recording) return {};
  if (stored) {
    it->second = PassStage::Stored;
    return {};
  }
  return dropFrom(it);
}

std::optional<TagPipeline::Id> TagPipeline::nextWrite() {
  if (passes_.empty()) return std::nullopt;
  auto& [id, stage] = *passes_.begin();
  if (stage != PassStage::Stored) return std::nullopt;
  stage = PassStage::Writing;
  return id;
}

std::vector<TagPipeline::Id> TagPipeline::finished(Id id, bool clean) {
  auto it = passes_.find(id);
  if (it == passes_.end()) return {};
  it = passes_.erase(it);
  if (clean) return {};
  return dropFrom(it);
}

std::vector<TagPipeline::Id> TagPipeline::dropFrom(std::map<Id, PassStage>::iterator it) {
  std::vector<Id> dropped;
  while (it != passes_.end()) {
    dropped.push_back(it->first);
    // A pass still planning is the executor's: it stays, Stale, until its plan comes back.
    if (it->second == PassStage::Planning || it->second == PassStage::Stale) {
      it->second = PassStage::Stale;
      ++it;
    } else {
      it = passes_.erase(it);
    }
  }
  return dropped;
}

std::optional<PassStage> TagPipeline::stage(Id id) const {
  auto it = passes_.find(id);
  if (it == passes_.end()) return std::nullopt;
  return it->second;
}

std::optional<TagPipeline::Id> TagPipeline::newest() const {
  for (auto it = passes_.rbegin(); it != passes_.rend(); ++it) {
    if (it->second != PassStage::Stale) return it->first;
  }
  return std::nullopt;
}

bool TagPipeline::recordedAfter(Id id) const {
  for (auto it = passes_.upper_bound(id); it != passes_.end(); ++it) {
    if (it->second != PassStage::Planning && it->second != PassStage::Stale) return true;
  }
  return false;
}

bool TagPipeline::olderThan(Id id) const { return !passes_.empty() && passes_.begin()->first < id; }

}  // namespace eni
