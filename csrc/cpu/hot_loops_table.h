// The table of one compiled copy of the hot loops (hot_loops.h): included
// once, last, by each hot_loops_<copy>.cpp, after it has named the copy's
// namespace (SEE_CPU_ISA, see_common.h).
#pragma once

#include "../philox_normal.h"
#include "expansion_kernels.h"
#include "hot_loops.h"
#include "normalize.h"
#include "proxy_anchor_kernels.h"
#include "unit_row_expansion.h"

namespace see {
namespace cpu {
SEE_ISA_BEGIN

template <typename T>
constexpr HotLoops<T> hot_loops_of_this_copy() {
  // In the order of HotLoops' members.
  return {&normalize_rows<T>,
          &row_norms<T>,
          &normalize_rows_backward<T>,
          &normalize_rows_backward_from_raw<T>,
          &loss_proxy_rows<T>,
          &philox_normal_fill<T>,
          &expand_unit_source<T>,
          &expand_source<T>,
          &expand_source_backward<T>};
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
