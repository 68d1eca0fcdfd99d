// The hot loops compiled for AVX-512 (F, CD, BW, DQ and VL, with AVX2 and
// FMA), taken by hot_loops.cpp on CPUs that have all of them. Built as
// hot_loops_avx2_fma.cpp is; see there.
#include "hot_loops_config.h"  // macros only

#if defined(SEE_CPU_AVX512_COPY)

#include "hot_loops_std_headers.h"

#pragma GCC target("avx2,fma,avx512f,avx512cd,avx512bw,avx512dq,avx512vl")
#define SEE_CPU_ISA avx512
#define SEE_CPU_TARGETS_AVX2_FMA 1
#include "hot_loops_table.h"

namespace see {
namespace cpu {

const HotLoopSet avx512_loops = {"avx512", 2, hot_loops_of_this_copy<float>(), hot_loops_of_this_copy<double>()};

}  // namespace cpu
}  // namespace see

#endif  // SEE_CPU_AVX512_COPY
