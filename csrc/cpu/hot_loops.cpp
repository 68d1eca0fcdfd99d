// Picks the copy of the hot loops (hot_loops.h) once per process.
#include "hot_loops.h"

#include <cstdlib>
#include <cstring>

namespace see {
namespace cpu {

int runnable_hot_loop_sets(const HotLoopSet* sets[3]) {
  int count = 0;
  sets[count++] = &build_flags_loops;
#if defined(SEE_CPU_AVX2_FMA_COPY) || defined(SEE_CPU_AVX512_COPY)
  // libgcc also checks that the OS saves the vector registers (XGETBV).
  __builtin_cpu_init();
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(SEE_CPU_AVX2_FMA_COPY)
  if (avx2_fma) sets[count++] = &avx2_fma_loops;
#endif
#if defined(SEE_CPU_AVX512_COPY)
  if (avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    sets[count++] = &avx512_loops;
#endif
  return count;
}

namespace {

int level_cap() {
  const char* setting = std::getenv("SEE_CUDA_CPU_ISA");
  if (setting != nullptr && std::strcmp(setting, "baseline") == 0) return 0;
  if (setting != nullptr && std::strcmp(setting, "avx2") == 0) return 1;
  return 2;
}

const HotLoopSet& choose() {
  const HotLoopSet* sets[3];
  const int count = runnable_hot_loop_sets(sets);
  const int cap = level_cap();
  for (int i = count - 1; i > 0; --i)
    if (sets[i]->level <= cap) return *sets[i];
  return *sets[0];
}

}  // namespace

const HotLoopSet& hot_loop_set() {
  static const HotLoopSet& chosen = choose();
  return chosen;
}

template <>
const HotLoops<float>& hot_loops<float>() {
  return hot_loop_set().f32;
}

template <>
const HotLoops<double>& hot_loops<double>() {
  return hot_loop_set().f64;
}

}  // namespace cpu
}  // namespace see
