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

// The CPU loops are compiled more than once on x86-64: with the build's flags,
// and for AVX2 + FMA and AVX-512 (cpu/hot_loops.h), picked at run time. Each
// copy of the functions of these headers lives in its own inline namespace,
// named by SEE_CPU_ISA, so that the linker never takes one copy's inline
// function for another's; callers still write see::f. Types stay outside it
// (they carry no code) so that all copies take the same arguments. CUDA code
// has one copy.
#if defined(__CUDACC__)
#define SEE_ISA_BEGIN
#define SEE_ISA_END
#else
#ifndef SEE_CPU_ISA
#define SEE_CPU_ISA build_flags
#endif
#define SEE_ISA_BEGIN inline namespace SEE_CPU_ISA {
#define SEE_ISA_END }
#endif

// Host code that may use AVX2 and FMA intrinsics: the build targets them, or
// this is a copy compiled for them (GCC's target pragma does not define
// __AVX2__ in C++).
#if !defined(__CUDACC__) && ((defined(__AVX2__) && defined(__FMA__)) || defined(SEE_CPU_TARGETS_AVX2_FMA))
#define SEE_HOST_AVX2_FMA 1
#endif

namespace see {

// Added to the squared norm before the square root, as the original code does.
constexpr double kNormEps = 1e-12;

SEE_ISA_BEGIN

SEE_HD float bits_to_float(int32_t bits) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

SEE_ISA_END
}  // namespace see
