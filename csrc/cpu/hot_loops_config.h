// Whether the build has an AVX2 + FMA copy of the hot loops (hot_loops.h): on
// x86-64 with GCC, unless the build's own flags already target AVX2 and FMA
// (then the build's copy is at least as fast). Macros only, so that
// hot_loops_avx2_fma.cpp can read it before its target pragma.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !(defined(__AVX2__) && defined(__FMA__))
#define SEE_CPU_AVX2_FMA_COPY 1
#endif
