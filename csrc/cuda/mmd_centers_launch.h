// Launch decisions of the Max-Mahalanobis centers kernel (mmd_centers_kernels.cuh):
// one thread per entry, a grid-stride loop beyond 65535 blocks.
#pragma once

#include <algorithm>
#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

constexpr int kMmdThreads = 256;

inline LaunchShape mmd_centers_launch(int64_t entries) {
  const int64_t blocks = std::min<int64_t>(ceil_div(entries, kMmdThreads), 65535);
  return LaunchShape{{static_cast<uint32_t>(blocks), 1, 1}, {kMmdThreads, 1, 1}, 0};
}

}  // namespace cuda
}  // namespace see
