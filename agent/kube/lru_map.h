#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

namespace eni {

/// A string-keyed map that holds at most `capacity` entries (at least one) and drops the least
/// recently used one to make room, so bookkeeping keyed by what the cluster names stays bounded.
/// Pointers from find() and put() stay valid until that entry is erased or evicted. Not
/// thread-safe.
template <class V>
class LruMap {
 public:
  explicit LruMap(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  /// The value of `key`, now the most recently used; nullptr when absent.
  V* find(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }
  /// Sets `key` to `value`, now the most recently used; evicts the least recently used entry
  /// when a new key does not fit.
  V& put(const std::string& key, V value) {
    if (V* existing = find(key)) {
      *existing = std::move(value);
      return *existing;
    }
    if (order_.size() == capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(key, std::move(value));
    index_[key] = order_.begin();
    return order_.front().second;
  }
  void erase(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    order_.erase(it->second);
    index_.erase(it);
  }
  std::size_t size() const { return order_.size(); }
  std::size_t capacity() const { return capacity_; }

 private:
  using Order = std::list<std::pair<std::string, V>>;  // most recently used first
  std::size_t capacity_;
  Order order_;
  std::unordered_map<std::string, typename Order::iterator> index_;
};

}  // namespace eni
