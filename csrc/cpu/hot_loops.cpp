// Picks the copy of the hot loops (hot_loops.h) once per process.
#include "hot_loops.h"

#include <cstdlib>
#include <cstring>

namespace see {
namespace cpu {
namespace {

const HotLoopSet& choose() {
#if defined(SEE_CPU_AVX2_FMA_COPY)
  const char* setting = std::getenv("SEE_CUDA_CPU_AVX2");
  const bool allowed = setting == nullptr || std::strcmp(setting, "0") != 0;
  __builtin_cpu_init();
  // libgcc also checks that the OS saves the AVX registers (XGETBV).
  if (allowed && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2_fma_loops;
#endif
  return build_flags_loops;
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
