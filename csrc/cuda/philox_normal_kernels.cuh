// CUDA kernel of philox_normal_: one thread per group of four elements, the
// same header as the CPU kernel (philox_normal.h), the seed read on the device.
// The formulas: docs/method.md §5.
#pragma once

#include <cstdint>

#include "../philox_normal.h"
#include "device_runtime.cuh"

namespace see {
namespace cuda {

template <typename T>
__global__ void philox_normal_kernel(T* out, const int64_t* seed, int64_t count) {
  const uint64_t seed_value = static_cast<uint64_t>(*seed);
  const int64_t num_groups = (count + 3) / 4;
  for (int64_t group = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; group < num_groups;
       group += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T values[4];
    philox_normal_group(seed_value, static_cast<uint64_t>(group), values);
    const int64_t first = 4 * group;
    for (int k = 0; k < 4 && first + k < count; ++k) out[first + k] = values[k];
  }
}

}  // namespace cuda
}  // namespace see
