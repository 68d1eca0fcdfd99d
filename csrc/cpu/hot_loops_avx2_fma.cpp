// The hot loops compiled for AVX2 + FMA, taken by hot_loops.cpp on CPUs that
// have both (and not AVX-512).
//
// Only the standard headers come before the target pragma: their inline
// functions stay baseline code, so that wherever the linker merges them with
// another unit's copy, that copy runs on any CPU. Everything after the pragma
// lives in the inline namespace avx2_fma (see_common.h), never merged with
// anything else. No ATen here: its headers would fall under the pragma.
#include "hot_loops_config.h"  // macros only

#if defined(SEE_CPU_AVX2_FMA_COPY)

#include "hot_loops_std_headers.h"

#pragma GCC target("avx2,fma")
#define SEE_CPU_ISA avx2_fma
#define SEE_CPU_TARGETS_AVX2_FMA 1
#include "hot_loops_table.h"

namespace see {
namespace cpu {

const HotLoopSet avx2_fma_loops = {"avx2+fma", 1, hot_loops_of_this_copy<float>(), hot_loops_of_this_copy<double>()};

}  // namespace cpu
}  // namespace see

#endif  // SEE_CPU_AVX2_FMA_COPY
