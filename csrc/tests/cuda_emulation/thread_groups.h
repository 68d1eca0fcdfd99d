// The synchronisation of an emulated thread block: the block barrier of
// __syncthreads and the per-warp exchange of the shuffles.
//
// Arrivals are counted under a mutex; the last one publishes the release by
// a store-release of a generation counter, on which the others sleep (a
// futex) and which they load-acquire. ThreadSanitizer models both the mutex
// and the atomics, so it sees the happens-before edges that the hardware
// barrier gives, and no others. (A condition variable would make every woken
// thread take the mutex again, one after another: twice the cost of a
// barrier, and tests run tens of thousands of them.) Misuse that is
// undefined on a GPU (a barrier after some threads of the block returned, a
// full-mask shuffle in a warp with fewer than 32 live lanes) aborts with a
// message instead of hanging or reading garbage; so does a wait that lasts
// longer than any test could need (a barrier reached by some threads only).
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace see {
namespace emulation {

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "CUDA emulation: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

// Waits are bounded: a thread stuck this long is a deadlock of the kernel.
constexpr std::chrono::seconds kDeadlockTimeout{300};

// A reusable barrier over `size` threads that counts threads which left.
// `misuse` is the message for a thread that returns while the others wait,
// whichever comes first: the return or the others' arrival.
class GroupBarrier {
 public:
  GroupBarrier(int size, const char* misuse) : size_(size), misuse_(misuse) {}

  // Returns once all `size` threads have arrived.
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    arrive_locked(lock);
  }

  // A thread of the group returned from the kernel.
  void leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++exited_;
    if (arrived_ > 0) fail(misuse_);  // the waiting threads would never be released
  }

 protected:
  // The caller holds `lock`, which this releases.
  void arrive_locked(std::unique_lock<std::mutex>& lock) {
    if (exited_ > 0) fail(misuse_);
    const uint32_t generation = generation_.load(std::memory_order_relaxed);
    if (++arrived_ == size_) {
      arrived_ = 0;
      generation_.store(generation + 1, std::memory_order_release);
      lock.unlock();
      syscall(SYS_futex, &generation_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
      return;
    }
    lock.unlock();
    const auto deadline = std::chrono::steady_clock::now() + kDeadlockTimeout;
    const timespec slice{1, 0};
    while (generation_.load(std::memory_order_acquire) == generation) {
      syscall(SYS_futex, &generation_, FUTEX_WAIT_PRIVATE, generation, &slice, nullptr, 0);
      if (std::chrono::steady_clock::now() > deadline)
        fail("a barrier or shuffle waited 300 s: not every thread of the group reaches it");
    }
  }

  std::mutex mutex_;

 private:
  const int size_;
  const char* const misuse_;
  int arrived_ = 0;
  int exited_ = 0;
  std::atomic<uint32_t> generation_{0};
};

// One warp: 32 lanes (fewer in a block whose size is not a multiple of 32)
// and the staging buffer of its shuffles. A shuffle is one barrier: each lane
// stores its value, waits for all 32, and reads its source's value. The
// buffer alternates between two halves, so a lane that runs ahead into the
// next shuffle cannot overwrite a value that a slower lane has still to read.
// Like the block barrier, the exchange orders all memory between the lanes
// (as __syncwarp would); a hardware shuffle does not, so a race between lanes
// of one warp that only a shuffle separates goes unreported.
class Warp : public GroupBarrier {
 public:
  explicit Warp(int lanes)
      : GroupBarrier(lanes, "a lane of the warp returned before a warp-wide operation (full-mask shuffle, WMMA) "
                            "that the others reach"),
        lanes_(lanes) {}

  int lanes() const { return lanes_; }

  // The operands of a warp-wide matrix operation (wmma.h), staged by their
  // logical position; the caller orders its use with arrive_and_wait.
  static constexpr size_t kMatrixStagingBytes = 4096;
  unsigned char* matrix_staging() { return matrix_staging_; }

  template <typename V>
  V exchange(int lane, V value, int source_lane) {
    static_assert(sizeof(V) <= sizeof(uint64_t), "shuffles of at most 8 bytes");
    std::unique_lock<std::mutex> lock(mutex_);
    if (lanes_ != 32) fail("a full-mask shuffle in a warp with fewer than 32 lanes");
    const int half = parity_[lane];
    parity_[lane] ^= 1;
    std::memcpy(&staging_[half][lane], &value, sizeof(V));
    // After the barrier: the source lane wrote before it arrived, and no lane
    // writes this half again before this lane has arrived at the next shuffle.
    arrive_locked(lock);
    V result;
    std::memcpy(&result, &staging_[half][source_lane], sizeof(V));
    return result;
  }

 private:
  const int lanes_;
  int parity_[32] = {};
  uint64_t staging_[2][32] = {};
  alignas(16) unsigned char matrix_staging_[kMatrixStagingBytes] = {};
};

}  // namespace emulation
}  // namespace see
