// Launch decisions of the row normalisation kernels (row_normalize.cuh): one
// warp per row, eight rows per block.
#pragma once

#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

constexpr int kNormRowsPerBlock = 8;
constexpr int kNormThreads = kNormRowsPerBlock * 32;

inline LaunchShape row_norm_launch(int64_t rows) {
  return LaunchShape{{static_cast<uint32_t>(ceil_div(rows, kNormRowsPerBlock)), 1, 1}, {kNormThreads, 1, 1}, 0};
}

}  // namespace cuda
}  // namespace see
