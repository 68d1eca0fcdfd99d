// GPU passes of the softmax-family losses (docs/method.md §7) over one chunk of classes: the
// N x count cosines of all rows with the chunk's class vectors, row-major.
// One block per row: the row's logits are reduced to the chunk's (max, sum)
// and merged into the row's running pair (softmax_family.h), chunk after
// chunk in stream order, so results do not depend on timing; the gradient
// pass turns the row's cosines into dL/dS in place from the row's final LSE.
// Labels are global (the chunk's column c is class first + c); a label that
// matches no column of any chunk leaves its row's target unfound, which the
// caller turns into NaN. Nothing is indexed by a label.
#pragma once

#include <cstdint>

#include "../softmax_family.h"
#include "block_reduce.cuh"

namespace see {
namespace cuda {

// The block's largest value, the same on every thread (NaN-free inputs; NaN is tracked apart).
__device__ inline double block_max(double v) {
  __shared__ double partial[kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = fmax(v, __shfl_down_sync(kFullMask, v, offset));
  v = __shfl_sync(kFullMask, v, 0);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  double top = partial[0];
  for (int i = 1; i < num_warps; ++i) top = fmax(top, partial[i]);
  return top;
}

// Row blockIdx.x of the chunk merged into its running (max, sum); its target logit if the target is here.
// The row's cosines are scratch afterwards (the target's is replaced by f(s_iy)), as on the CPU.
template <typename T>
__global__ void softmax_rows_kernel(T* S, int64_t count, int64_t first, const int64_t* labels, LogitMap map,
                                    double* row_max, double* row_sum, double* target_logit, double* found) {
  const int64_t i = blockIdx.x;
  T* s = S + i * count;
  const int64_t target = labels[i] - first;  // outside [0, count): not in this chunk
  if (threadIdx.x == 0 && target >= 0 && target < count) {
    const double cosine = static_cast<double>(s[target]);
    target_logit[i] = row_logit(cosine, true, map);
    found[i] = 1.0;
    s[target] = static_cast<T>(target_margin(cosine, map));
  }
  __syncthreads();
  const T scale = static_cast<T>(map.scale), bias = static_cast<T>(map.bias);
  double top = -INFINITY;
  for (int64_t c = threadIdx.x; c < count; c += blockDim.x) top = fmax(top, static_cast<double>(s[c]));
  // scale > 0: the largest cosine has the largest logit; a NaN cosine makes the row's sum NaN.
  const T shift = scale * static_cast<T>(block_max(top)) + bias;
  double sum = 0.0;
  for (int64_t c = threadIdx.x; c < count; c += blockDim.x) sum += entry_exponential(s[c], scale, bias, shift);
  sum = block_sum(sum);
  if (threadIdx.x == 0) lse_merge(row_max[i], row_sum[i], static_cast<double>(shift), sum);
}

// Row blockIdx.x of the chunk's cosines replaced by d loss / d s, from the row's final lse and its weight.
template <typename T>
__global__ void softmax_grad_kernel(T* S, int64_t count, int64_t first, const int64_t* labels, LogitMap map,
                                    const double* lse, const double* weight) {
  const int64_t i = blockIdx.x;
  T* s = S + i * count;
  const int64_t target = labels[i] - first;
  const bool here = target >= 0 && target < count;
  const double target_cosine = here ? static_cast<double>(s[target]) : 0.0;
  __syncthreads();  // every thread has read the target's cosine before it is overwritten
  const T scale = static_cast<T>(map.scale), bias = static_cast<T>(map.bias);
  const T row_lse = static_cast<T>(lse[i]), weight_scale = static_cast<T>(weight[i] * map.scale);
  for (int64_t c = threadIdx.x; c < count; c += blockDim.x)
    s[c] = c == target ? static_cast<T>(cosine_grad(target_cosine, row_logit(target_cosine, true, map), true, lse[i],
                                                    weight[i], map))
                       : other_class_grad(s[c], scale, bias, row_lse, weight_scale);
}

}  // namespace cuda
}  // namespace see
