#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace eni {

/// Where one owner (NodeENI, host interface) stands in the write-ahead that comes before each
/// CreateNetworkInterface (NodeState::creating): the record must say a create may be in flight
/// before it is, so that a kill right after the create leaves an ENI the next run may release.
enum class WriteAheadState {
  Wanted,     // a pass held a create back for it; not yet in a write
  Recording,  // in the write the state store is making
  Stored,     // the store holds it: creates for it may be sent
};

/// The write-ahead's states for every owner, kept by a reconciler on the loop thread.
class CreateWriteAhead {
 public:
  /// The previous run's record: its owners are Stored (a create may have been in flight).
  void load(const std::vector<std::string>& creating);
  /// A pass held creates back for these owners (Wanted unless already further on).
  void want(const std::vector<std::string>& owners);
  /// Wanted -> Recording; false when nothing is Wanted or a write is already in flight.
  bool begin();
  /// The write answered: Recording -> Stored, or dropped when it was not stored.
  void finished(bool stored);
  /// A pass ended with nothing left to create or retry: every ENI made is in the records.
  void clear();

  bool recording() const;
  /// Owners whose creates may be sent.
  std::set<std::string> stored() const;
  /// What NodeState::creating holds: every owner in any state, sorted.
  std::vector<std::string> names() const;
  bool empty() const { return owners_.empty(); }

 private:
  std::map<std::string, WriteAheadState> owners_;
};

}  // namespace eni
