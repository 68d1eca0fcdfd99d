// Which extra copies of the hot loops (hot_loops.h) the build has: on x86-64
// with GCC, one for AVX2 + FMA and one for AVX-512 (F, CD, BW, DQ, VL), each
// unless the build's own flags already target that set (then the build's copy
// is at least as fast). Macros only, so that the copies' units can read it
// before their target pragmas.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#if !(defined(__AVX2__) && defined(__FMA__))
#define SEE_CPU_AVX2_FMA_COPY 1
#endif
#if !(defined(__AVX512F__) && defined(__AVX512CD__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
      defined(__AVX512VL__))
#define SEE_CPU_AVX512_COPY 1
#endif
#endif
