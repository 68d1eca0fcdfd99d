// Launch decisions of the Philox normal stream kernel (philox_normal_kernels.cuh):
// one thread per group of four elements, a grid-stride loop beyond 65535 blocks.
#pragma once

#include <algorithm>
#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

constexpr int kPhiloxThreads = 256;

inline LaunchShape philox_normal_launch(int64_t count) {
  const int64_t groups = ceil_div(count, 4);
  const int64_t blocks = std::min<int64_t>(ceil_div(groups, kPhiloxThreads), 65535);
  return LaunchShape{{static_cast<uint32_t>(blocks), 1, 1}, {kPhiloxThreads, 1, 1}, 0};
}

}  // namespace cuda
}  // namespace see
