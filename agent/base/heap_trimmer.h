#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace eni {

/// Hands freed heap pages back to the kernel after a burst. glibc keeps what a burst freed (a
/// relist, 110 pods tagged at once, a retry storm) inside its arenas, where it still counts as RSS
/// and against the container's memory limit; malloc_trim(0) returns the free pages. tick() runs on
/// the app's 1 s report timer and trims only when the arenas hold at least `step` more free bytes
/// than after the last trim, so a steady agent makes no extra syscall.
class HeapTrimmer {
 public:
  using FreeBytes = std::function<std::size_t()>;
  using Trim = std::function<void()>;

  /// glibc's mallinfo2().fordblks and malloc_trim(0).
  explicit HeapTrimmer(std::size_t step = std::size_t{256} << 10);
  /// For tests: the probe and the action.
  HeapTrimmer(std::size_t step, FreeBytes freeBytes, Trim trim);

  /// Returns true when it trimmed.
  bool tick();
  std::uint64_t trims() const { return trims_; }

 private:
  std::size_t step_;
  FreeBytes freeBytes_;
  Trim trim_;
  std::size_t mark_ = 0;  // free bytes after the last trim, lowered as memory is reused
  std::uint64_t trims_ = 0;
};

/// Makes every thread allocate from glibc's main arena (M_ARENA_MAX 1). Each thread that
/// allocates otherwise gets an arena of its own (the AWS worker, the HTTP servers' threads, curl's
/// resolver threads), and each keeps its own free pages resident. Call first in main(), before
/// any thread starts. Returns false if glibc refused it.
bool useOneMallocArena();

}  // namespace eni
