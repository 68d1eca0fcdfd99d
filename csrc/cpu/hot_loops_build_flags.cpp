// The hot loops compiled with the build's own flags (baseline x86-64 or
// aarch64 unless SEE_CUDA_CPU_FLAGS says otherwise): the copy every CPU runs.
#include "hot_loops_table.h"

namespace see {
namespace cpu {

const HotLoopSet build_flags_loops = {"build flags", 0, hot_loops_of_this_copy<float>(),
                                      hot_loops_of_this_copy<double>()};

}  // namespace cpu
}  // namespace see
