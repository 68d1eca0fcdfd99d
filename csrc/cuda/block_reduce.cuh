// Warp- and block-wide reductions shared by the CUDA kernels of see_cuda.
//
// Every thread of the warp (block) receives the same result, computed in the
// same order: per-row decisions taken from a reduced value (degenerate frame,
// antipodal pair) are then uniform and never split a warp or a block. Blocks
// are 1-D with a size that is a multiple of the warp size.
#pragma once

#include <cmath>
#include <cstdint>

#include "device_runtime.cuh"

namespace see {
namespace cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Sum over the warp, lane 0's order broadcast to every lane.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_down_sync(kFullMask, v, offset);
  return __shfl_sync(kFullMask, v, 0);
}

// Sum over the block. Two barriers: the first keeps a previous call's readers
// from seeing this call's partials, the second publishes them.
template <typename T>
__device__ T block_sum(T v) {
  __shared__ T partial[kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  T total = partial[0];
  for (int i = 1; i < num_warps; ++i) total += partial[i];
  return total;
}

// A candidate of an argmin: the smaller value wins, the smaller index on ties
// (the first index, as a sequential scan with a strict < keeps).
template <typename T>
struct IndexedValue {
  T value;
  int64_t index;
};

template <typename T>
__device__ __forceinline__ IndexedValue<T> first_min(IndexedValue<T> a, IndexedValue<T> b) {
  return (b.value < a.value || (b.value == a.value && b.index < a.index)) ? b : a;
}

template <typename T>
__device__ __forceinline__ IndexedValue<T> warp_argmin(IndexedValue<T> v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    IndexedValue<T> other{__shfl_down_sync(kFullMask, v.value, offset),
                          static_cast<int64_t>(__shfl_down_sync(kFullMask, static_cast<long long>(v.index), offset))};
    v = first_min(v, other);
  }
  v.value = __shfl_sync(kFullMask, v.value, 0);
  v.index = static_cast<int64_t>(__shfl_sync(kFullMask, static_cast<long long>(v.index), 0));
  return v;
}

// Index of the smallest |value(d)|, d < D (the first on ties), over one warp:
// the parallel form of see::least_aligned_axis. `value` maps an index to the
// entry, so that callers need not store the unit vector it is taken of.
template <typename T, typename Value>
__device__ int64_t warp_least_aligned_axis(Value value, int64_t D) {
  const int lane = threadIdx.x % kWarpSize;
  IndexedValue<T> best{INFINITY, INT64_MAX};
  for (int64_t d = lane; d < D; d += kWarpSize) best = first_min(best, IndexedValue<T>{fabs(value(d)), d});
  const int64_t axis = warp_argmin(best).index;
  return axis < D ? axis : 0;  // all NaN: index 0, as the sequential scan
}

// The same over the block, for a stored vector.
template <typename T>
__device__ int64_t block_least_aligned_axis(const T* values, int64_t D) {
  __shared__ T partial_value[kWarpSize];
  __shared__ int64_t partial_index[kWarpSize];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  IndexedValue<T> best{INFINITY, INT64_MAX};
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) best = first_min(best, IndexedValue<T>{fabs(values[d]), d});
  best = warp_argmin(best);
  __syncthreads();
  if (lane == 0) {
    partial_value[warp] = best.value;
    partial_index[warp] = best.index;
  }
  __syncthreads();
  IndexedValue<T> total{partial_value[0], partial_index[0]};
  for (int i = 1; i < num_warps; ++i) total = first_min(total, IndexedValue<T>{partial_value[i], partial_index[i]});
  return total.index < D ? total.index : 0;
}

// Dot product of two D-vectors by one warp (every lane gets it).
template <typename T>
__device__ __forceinline__ T warp_dot(const T* a, const T* b, int64_t D) {
  const int lane = threadIdx.x % kWarpSize;
  T s = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) s += a[d] * b[d];
  return warp_sum(s);
}

}  // namespace cuda
}  // namespace see
