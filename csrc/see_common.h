// Definitions shared by the CPU and CUDA kernels of see_cuda.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SEE_HD __host__ __device__ __forceinline__
#else
#define SEE_HD inline
#endif

namespace see {

// Added to the squared norm before the square root, as the original code does.
constexpr double kNormEps = 1e-12;

SEE_HD float bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

}  // namespace see
