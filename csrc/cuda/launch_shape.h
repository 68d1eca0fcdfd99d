// The shape of one kernel launch. The *_launch.h headers decide it in plain
// host code, which the CUDA glue (*.cu) and the emulated C++ tests both call,
// so that the tests run the kernels with the grids the GPU gets.
#pragma once

#include <cstdint>

namespace see {
namespace cuda {

struct LaunchShape {
  uint32_t grid[3];
  uint32_t block[3];
  int64_t shared_bytes;  // dynamic shared memory per block
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace cuda
}  // namespace see
