// The CPU loops that take the time, as a table of function pointers per
// instruction set, chosen once per process (hot_loops.cpp).
//
// Wheels must run on any x86-64 CPU, so the build's flags stay at the
// baseline; these loops are then compiled again for AVX2 + FMA
// (hot_loops_avx2_fma.cpp) and for AVX-512 (hot_loops_avx512.cpp), and the
// best copy the CPU can run is taken.
//
// The ATen glue takes the entry it needs from hot_loops<T>() once per range
// of rows or proxies it hands to a thread, and calls it for the range (or
// for each expanded source in it): indirect calls cost nothing at that grain.
#pragma once

#include <cstdint>

#include "expansion_kernels.h"
#include "hot_loops_config.h"
#include "proxy_anchor_kernels.h"
#include "unit_row_expansion.h"

namespace see {
namespace cpu {

// The loops for one dtype; each is the function of the same name in
// normalize.h, proxy_anchor_kernels.h, ../philox_normal.h, expansion_kernels.h
// or unit_row_expansion.h.
template <typename T>
struct HotLoops {
  void (*normalize_rows)(const T* in, T* out, T* norms, int64_t begin, int64_t end, int64_t D);
  void (*row_norms)(const T* in, T* norms, int64_t begin, int64_t end, int64_t D);
  void (*normalize_rows_backward)(const T* unit, const T* norms, const T* grad_unit, T* grad, int64_t begin,
                                  int64_t end, int64_t D);
  void (*normalize_rows_backward_from_raw)(const T* raw, const T* norms, T* grad, int64_t begin, int64_t end,
                                           int64_t D);
  void (*loss_proxy_rows)(const LossProblem<T>& p, int64_t begin, int64_t end, bool write_grad,
                          const ColumnTerms& terms);
  void (*philox_normal_fill)(uint64_t seed, uint64_t first, int64_t count, T* out);
  void (*expand_unit_source)(const T* z_unit, const T* w_unit, int64_t n, int64_t D, const DrawSource<T>& draws,
                             const ExpansionBuffers<T>& scratch, T* out);
  void (*expand_source)(const T* z, const T* w, const T* noise, int64_t n, int64_t D,
                        const ExpansionBuffers<T>& scratch, T* out);
  void (*expand_source_backward)(const T* z, const T* w, const T* noise, const T* grad, int64_t n, int64_t D,
                                 const ExpansionBuffers<T>& scratch, T* grad_z);
};

// One compiled copy of every loop.
struct HotLoopSet {
  const char* name;  // "build flags", "avx2+fma" or "avx512"
  int level;         // 0, 1, 2 in that order: SEE_CUDA_CPU_ISA caps it
  HotLoops<float> f32;
  HotLoops<double> f64;
};

extern const HotLoopSet build_flags_loops;  // hot_loops_build_flags.cpp
#if defined(SEE_CPU_AVX2_FMA_COPY)
extern const HotLoopSet avx2_fma_loops;  // hot_loops_avx2_fma.cpp
#endif
#if defined(SEE_CPU_AVX512_COPY)
extern const HotLoopSet avx512_loops;  // hot_loops_avx512.cpp
#endif

// The copies this CPU can run, best last: build_flags_loops first.
int runnable_hot_loop_sets(const HotLoopSet* sets[3]);

// The copy this process uses: the best runnable one, unless the environment
// caps it with SEE_CUDA_CPU_ISA=baseline (the build's flags) or =avx2 (AVX2 +
// FMA at most); other values leave it uncapped.
const HotLoopSet& hot_loop_set();

template <typename T>
const HotLoops<T>& hot_loops();
template <>
const HotLoops<float>& hot_loops<float>();
template <>
const HotLoops<double>& hot_loops<double>();

}  // namespace cpu
}  // namespace see
