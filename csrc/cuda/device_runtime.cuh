// The CUDA runtime that the kernel headers build on. Under nvcc it is the real
// one. The C++ tests run the same kernel headers on the host through an
// emulation (csrc/tests/cuda_emulation/emulation.h), included first, which
// defines SEE_CUDA_EMULATION and its own forms of these names.
#pragma once

#include "launch_shape.h"

#if !defined(SEE_CUDA_EMULATION)
#include <cuda_runtime.h>

// The launch's dynamic shared memory as bytes, aligned for every element type
// that the kernels carve out of it.
#define SEE_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

namespace see {
namespace cuda {

inline dim3 grid_of(const LaunchShape& shape) { return dim3(shape.grid[0], shape.grid[1], shape.grid[2]); }
inline dim3 block_of(const LaunchShape& shape) { return dim3(shape.block[0], shape.block[1], shape.block[2]); }

}  // namespace cuda
}  // namespace see
