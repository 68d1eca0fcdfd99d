// Launch shapes of the softmax-family kernels (softmax_family_kernels.cuh),
// decided in host code that the CUDA glue and the emulated tests share.
#pragma once

#include <algorithm>
#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

constexpr int64_t kSoftmaxRowThreads = 256;

// One block per row of the N x count chunk, its threads along the row.
inline LaunchShape softmax_rows_launch(int64_t N, int64_t count) {
  const int64_t threads = std::min<int64_t>(kSoftmaxRowThreads, std::max<int64_t>(32, ceil_div(count, 32) * 32));
  return LaunchShape{{static_cast<uint32_t>(N), 1, 1}, {static_cast<uint32_t>(threads), 1, 1}, 0};
}

}  // namespace cuda
}  // namespace see
