// Launch decisions of the slerp kernels (slerp_kernels.cuh): one warp per row.
#pragma once

#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

constexpr int kSlerpRowsPerBlock = 8;

inline LaunchShape slerp_launch(int64_t rows) {
  return LaunchShape{
      {static_cast<uint32_t>(ceil_div(rows, kSlerpRowsPerBlock)), 1, 1}, {kSlerpRowsPerBlock * 32, 1, 1}, 0};
}

}  // namespace cuda
}  // namespace see
