// Definitions shared by the CPU and CUDA kernels of see_cuda.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SEE_HD __host__ __device__ __forceinline__
#else
#define SEE_HD inline
#endif

// Marks a loop that accumulates into `var` as reorderable, so that the compiler
// vectorises the sum (OpenMP SIMD; builds pass -fopenmp or -fopenmp-simd). The
// order of a sum then depends on the vector width, never on the thread count.
#define SEE_PRAGMA(text) _Pragma(#text)
#if defined(__CUDA_ARCH__)
#define SEE_SIMD_SUM(var)
#else
#define SEE_SIMD_SUM(var) SEE_PRAGMA(omp simd reduction(+ : var))
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
