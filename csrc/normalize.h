// Row normalisation x / sqrt(|x|^2 + eps) and its backward, as plain loops.
#pragma once

#include <cmath>

#include "see_common.h"

namespace see {

// Writes in[0:D] / sqrt(|in|^2 + eps) to out and returns that norm.
template <typename T>
inline T normalize_row(const T* in, T* out, int64_t D) {
  T sq = T(0);
  SEE_SIMD_SUM(sq)
  for (int64_t d = 0; d < D; ++d) sq += in[d] * in[d];
  const T norm = std::sqrt(sq + T(kNormEps));
  for (int64_t d = 0; d < D; ++d) out[d] = in[d] / norm;
  return norm;
}

// Gradient w.r.t. the input row from the gradient w.r.t. the unit row:
// (g - u (u . g)) / norm, where u is the unit row.
template <typename T>
inline void normalize_row_backward(const T* unit, T norm, const T* grad_unit, T* grad_in, int64_t D) {
  T dot = T(0);
  SEE_SIMD_SUM(dot)
  for (int64_t d = 0; d < D; ++d) dot += unit[d] * grad_unit[d];
  for (int64_t d = 0; d < D; ++d) grad_in[d] = (grad_unit[d] - unit[d] * dot) / norm;
}

}  // namespace see
