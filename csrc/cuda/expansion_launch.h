// Launch decisions of the SEE expansion kernels (expansion_kernels.cuh): one
// block per source, its thread count, and where each source's scratch lives
// (expansion_workspace.cuh) given the device's shared memory per block.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../see_common.h"
#include "launch_shape.h"

namespace see {
namespace cuda {

// Scratch of one source, in elements: the large part, O(n D), and the small
// part, O(n^2); expansion_workspace.cuh lists what each holds.
struct ExpansionSizes {
  int64_t n, D;
  bool backward;

  SEE_HD int64_t m() const { return n - 1; }  // noise directions
  SEE_HD int64_t large_elems() const { return (n + 1) * D + (backward ? n * D + D : 0); }
  SEE_HD int64_t small_elems() const {
    const int64_t gs = m() * (n + 1) + (n + 1), simplex = n + (n + 1);
    return gs + simplex + (backward ? m() * (m() + 1) / 2 + 4 * m() : 0);
  }
};

// Scratch handed to a kernel: per part, null for shared memory or a global buffer.
template <typename T>
struct ScratchPlacement {
  T* large_global;
  T* small_global;
};

// Dynamic shared memory the kernels may claim below the opt-in limit: the
// rest is room for their static reduction buffers (block_reduce.cuh).
constexpr int64_t kStaticSharedReserve = 2048;
// Above this a kernel must opt in to more dynamic shared memory.
constexpr int64_t kDefaultSharedLimit = 48 * 1024;

// Threads per source: one coordinate per thread up to 256, and at least two
// warps (the backward runs its two triangular solves on different warps).
inline int expansion_threads(int64_t D) {
  return static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(64, ceil_div(D, 32) * 32)));
}

// The launch of k sources and the global scratch it needs.
struct ExpansionLaunch {
  LaunchShape shape;
  int64_t global_elems;  // elements of the global scratch buffer (all sources), 0 for none
  int64_t k;
  ExpansionSizes sizes;
  bool large_global, small_global;

  bool needs_shared_opt_in() const { return shape.shared_bytes > kDefaultSharedLimit; }

  // The parts' pointers into `global` (global_elems elements): the large
  // parts of all sources first, then the small parts if they are there too.
  template <typename T>
  ScratchPlacement<T> placement(T* global) const {
    return ScratchPlacement<T>{large_global ? global : nullptr,
                               small_global ? global + k * sizes.large_elems() : nullptr};
  }
};

// Both parts in shared memory when they fit the budget (the device's opt-in
// limit per block less the reserve); otherwise the large part moves to a
// global buffer, and the small part too if it alone does not fit.
inline ExpansionLaunch plan_expansion_launch(const ExpansionSizes& sizes, int64_t k, int64_t element_bytes,
                                             int64_t shared_optin_bytes) {
  const int64_t budget = shared_optin_bytes - kStaticSharedReserve;
  const int64_t small_bytes = sizes.small_elems() * element_bytes;
  const int64_t large_bytes = sizes.large_elems() * element_bytes;
  ExpansionLaunch plan{};
  plan.k = k;
  plan.sizes = sizes;
  int64_t shared_bytes = 0;
  if (small_bytes + large_bytes <= budget) {
    shared_bytes = small_bytes + large_bytes;
  } else {
    const bool small_fits = small_bytes <= budget;
    plan.large_global = true;
    plan.small_global = !small_fits;
    plan.global_elems = k * (sizes.large_elems() + (small_fits ? 0 : sizes.small_elems()));
    if (small_fits) shared_bytes = small_bytes;
  }
  plan.shape = LaunchShape{{static_cast<uint32_t>(k), 1, 1}, {static_cast<uint32_t>(expansion_threads(sizes.D)), 1, 1},
                           shared_bytes};
  return plan;
}

}  // namespace cuda
}  // namespace see
