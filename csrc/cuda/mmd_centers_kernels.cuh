// CUDA kernel of the Max-Mahalanobis centers: every entry from its closed form
// (mmd_centers.h). Static: one kernel per translation unit that includes it.
// The formulas: docs/method.md §3.3.
#pragma once

#include <cstdint>

#include "../mmd_centers.h"
#include "device_runtime.cuh"

namespace see {
namespace cuda {

static __global__ void mmd_centers_kernel(double* centers, int64_t num_centers, int64_t dim, double radius) {
  const int64_t total = num_centers * dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    centers[idx] = radius * mmd_center_entry(idx / dim, idx % dim, num_centers);
  }
}

}  // namespace cuda
}  // namespace see
