// The first kernels of the one-call SEE loss on the GPU (docs/method.md §2-3),
// the work of see_loss_cpu.cpp before the loss: unit rows and each row's
// cosine with its class proxy, the selection, and the synthetic points.
//
// No value is read back: the selection's count (threshold mode) and the
// checks stay on the device (SelectionState), and later kernels read them.
// A label outside [0, C), or a row whose norm is not finite, sets a flag
// that makes the loss and the gradients NaN (flash_loss_kernels.cuh); the
// kernels index nothing with such a label.
#pragma once

#include <cstdint>

#include "../expansion.h"
#include "../see_common.h"
#include "block_reduce.cuh"
#include "expansion_kernels.cuh"
#include "see_loss_launch.h"

namespace see {
namespace cuda {

// x / sqrt(|x|^2 + eps) of one D-vector by the block (normalize_row on the CPU); returns the norm.
template <typename T>
__device__ T block_normalize(const T* in, int64_t D, T* out) {
  T sq = T(0);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) sq += in[d] * in[d];
  const T norm = sqrt(block_sum(sq) + T(kNormEps));
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) out[d] = in[d] / norm;
  return norm;
}

// The norms of the proxies [first, first + kProxiesPerBlock), one per warp, and their flag.
template <typename T>
__device__ void proxy_norms_block(const SeeLossKernelParams<T>& p, int64_t block) {
  __shared__ int flags;
  const int64_t first = block * kProxiesPerBlock, c = first + threadIdx.x / kWarpSize;
  if (threadIdx.x == 0) flags = 0;
  __syncthreads();
  if (c < p.C) {  // uniform over the warp
    T sq = T(0);
    for (int64_t d = threadIdx.x % kWarpSize; d < p.D; d += kWarpSize) sq += p.proxies[c * p.D + d] * p.proxies[c * p.D + d];
    const T norm = sqrt(warp_sum(sq) + T(kNormEps));
    if (threadIdx.x % kWarpSize == 0) {
      p.proxy_norms[c] = norm;
      if (!isfinite(norm)) atomicOr(&flags, static_cast<int>(kNonFiniteProxy));
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) p.proxy_flags[block] = flags;
}

// Blocks [0, B), one per batch row i: its unit row, the unit proxy of its
// class (NaN for a label out of range), their cosine, and its flags. The
// blocks after them: the proxies' norms (prepare_rows_launch).
template <typename T>
__global__ void prepare_rows_kernel(SeeLossKernelParams<T> p) {
  if (blockIdx.x >= p.B) {  // the same for the whole block
    proxy_norms_block(p, blockIdx.x - p.B);
    return;
  }
  const int64_t i = blockIdx.x, D = p.D;
  const int64_t y = p.labels[i];
  const bool in_range = y >= 0 && y < p.C;
  const T norm = block_normalize(p.x + i * D, D, p.rows + i * D);
  T* axis = p.axes + i * D;
  T proxy_norm = T(1);
  if (in_range) {
    proxy_norm = block_normalize(p.proxies + y * D, D, axis);
  } else {
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) axis[d] = T(NAN);
  }
  T s = T(0);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) s += p.rows[i * D + d] * axis[d];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    p.positive_cosine[i] = s;
    p.row_norms[i] = norm;
    p.row_labels[i] = y;
    p.row_flags[i] = (in_range ? 0 : kLabelOutOfRange) | (isfinite(norm) ? 0 : kNonFiniteEmbedding) |
                     (isfinite(proxy_norm) ? 0 : kNonFiniteProxy);
  }
}

// The order of the selection: larger cosines first, equal ones in batch order
// (select_rows on the CPU). A NaN cosine (only in a flagged call) ranks as
// -inf, so that the ranks stay a permutation and every index stays in range.
template <typename T>
__device__ __forceinline__ bool selected_before(T sj, int64_t j, T si, int64_t i) {
  const T a = isnan(sj) ? T(-INFINITY) : sj, b = isnan(si) ? T(-INFINITY) : si;
  return a > b || (a == b && j < i);
}

// One block: which rows are expanded and where their points go, the labels
// of the synthetic rows, |P+| of both parts, the flags of all rows and
// proxies, the mean positive cosine. Quadratic in B, in parallel over the rows.
template <typename T>
__global__ void select_kernel(SeeLossKernelParams<T> p) {
  __shared__ int shared_flags;
  const int64_t B = p.B, n = p.n;
  const bool by_count = p.num_selected >= 0;
  const int64_t k_max = most_expanded(B, p.num_selected);
  const T bound = static_cast<T>(p.threshold);  // compared in T, as torch compares a tensor with a float
  if (threadIdx.x == 0) shared_flags = 0;
  __syncthreads();
  long long count = 0, real_classes = 0;
  double cosine_sum = 0.0;
  for (int64_t i = threadIdx.x; i < B; i += blockDim.x) {
    const T si = p.positive_cosine[i];
    const int64_t yi = p.labels[i];
    int64_t rank = 0;
    bool first_of_class = yi >= 0 && yi < p.C;
    for (int64_t j = 0; j < B; ++j) {
      const T sj = p.positive_cosine[j];
      rank += by_count ? selected_before(sj, j, si, i) : (j < i && sj >= bound);
      first_of_class = first_of_class && !(j < i && p.labels[j] == yi);
    }
    const bool selected = by_count ? rank < k_max : si >= bound;
    if (selected) {
      p.expanded_rows[rank] = i;
      for (int64_t t = 0; t < n; ++t) p.row_labels[B + rank * n + t] = yi;
    }
    count += selected;
    real_classes += first_of_class;
    cosine_sum += static_cast<double>(si);
    if (p.row_flags[i] != 0) atomicOr(&shared_flags, static_cast<int>(p.row_flags[i]));
  }
  for (int64_t b = threadIdx.x; b < proxy_blocks(p.C); b += blockDim.x)
    if (p.proxy_flags[b] != 0) atomicOr(&shared_flags, static_cast<int>(p.proxy_flags[b]));
  count = block_sum(count);  // its barriers also publish expanded_rows and the flags
  real_classes = block_sum(real_classes);
  cosine_sum = block_sum(cosine_sum);
  // The synthetic part's classes: those of the expanded rows, each counted at its first expanded row.
  long long synthetic_classes = 0;
  for (int64_t r = threadIdx.x; r < count; r += blockDim.x) {
    const int64_t yi = p.labels[p.expanded_rows[r]];
    bool first = yi >= 0 && yi < p.C;
    for (int64_t q = 0; q < count && first; ++q) {
      const int64_t other = p.expanded_rows[q];
      first = !(p.labels[other] == yi && other < p.expanded_rows[r]);
    }
    synthetic_classes += first;
  }
  synthetic_classes = block_sum(synthetic_classes);
  if (threadIdx.x == 0) {
    SelectionState& s = *p.state;
    s.expanded = count;
    s.rows = B + count * n;
    s.positive_classes[0] = real_classes;
    s.positive_classes[1] = synthetic_classes;
    s.flags = shared_flags;
    *p.num_expanded = count;
    *p.mean_cosine = static_cast<T>(B > 0 ? cosine_sum / static_cast<double>(B) : 0.0);
  }
}

// One block per possible expanded row j (blocks past the selection's count
// leave at once): the n points of row expanded_rows[j] about its class
// proxy, normalised as the loss's rows, into rows B + j n, ... (the points of
// unit_row_expansion.h on the CPU). Draws: the given noise of that row, or
// elements [j (n-1) D, (j+1) (n-1) D) of the stream.
template <typename T>
__global__ void expand_selected_kernel(SeeLossKernelParams<T> p, ExpansionSizes sizes, ScratchPlacement<T> placement) {
  SEE_DYNAMIC_SHARED(shared_raw);
  const int64_t j = blockIdx.x, n = p.n, D = p.D;
  if (j >= p.state->expanded) return;  // the same for the whole block
  const int64_t row = p.expanded_rows[j];
  const ExpansionBuffers<T> scratch =
      carve_scratch(sizes, j, reinterpret_cast<T*>(shared_raw), placement.large_global, placement.small_global);
  fill_simplex_columns(n, scratch.lower, scratch.diag);
  const T* noise = p.noise ? p.noise + row * (n - 1) * D : p.draws + j * (n - 1) * D;
  const SourceGeometry<T> geo =
      build_frame(p.rows + row * D, p.axes + row * D, noise, n, D, scratch.frame, scratch.gs_coef, scratch.pass_coef);
  T* out = p.rows + (p.B + j * n) * D;
  emit_points(geo, scratch.frame, scratch.lower, scratch.diag, n, D, out);
  __syncthreads();  // each thread normalises coordinates that others wrote
  for (int64_t t = 0; t < n; ++t) block_normalize(out + t * D, D, out + t * D);
}

}  // namespace cuda
}  // namespace see
