// Row normalisation x / sqrt(|x|^2 + eps) and its backward on the GPU: one
// warp per row (row_norm_launch in row_normalize_launch.h).
// The formulas: docs/method.md §1, §3.1.
#pragma once

#include <cstdint>

#include "../see_common.h"
#include "block_reduce.cuh"
#include "row_normalize_launch.h"

namespace see {
namespace cuda {

// out[i] = in[i] / norms[i], norms[i] = sqrt(|in[i]|^2 + eps), for rows i < rows.
template <typename T>
__global__ void normalize_rows_kernel(const T* in, int64_t rows, int64_t D, T* out, T* norms) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kNormRowsPerBlock + threadIdx.x / kWarpSize;
  if (i >= rows) return;
  const T* src = in + i * D;
  T sq = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) sq += src[d] * src[d];
  const T norm = sqrt(warp_sum(sq) + T(kNormEps));
  for (int64_t d = lane; d < D; d += kWarpSize) out[i * D + d] = src[d] / norm;
  if (lane == 0) norms[i] = norm;
}

// grad_in[i] = (g - u (u . g)) / norm with u = unit[i], g = grad_unit[i].
template <typename T>
__global__ void normalize_rows_backward_kernel(const T* unit, const T* norms, const T* grad_unit, int64_t rows,
                                               int64_t D, T* grad_in) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kNormRowsPerBlock + threadIdx.x / kWarpSize;
  if (i >= rows) return;
  const T* u = unit + i * D;
  const T* g = grad_unit + i * D;
  T dot = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) dot += u[d] * g[d];
  dot = warp_sum(dot);
  const T norm = norms[i];
  for (int64_t d = lane; d < D; d += kWarpSize) grad_in[i * D + d] = (g[d] - u[d] * dot) / norm;
}

}  // namespace cuda
}  // namespace see
