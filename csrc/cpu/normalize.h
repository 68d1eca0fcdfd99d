// Row normalisation x / sqrt(|x|^2 + eps) and its backward, as plain loops.
#pragma once

#include <cmath>

#include "../see_common.h"

namespace see {

template <typename T>
inline T dot(const T* a, const T* b, int64_t D) {
  T s = T(0);
  SEE_SIMD_SUM(s)
  for (int64_t d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

// sqrt(|in|^2 + eps), the norm every row is divided by.
template <typename T>
inline T row_norm(const T* in, int64_t D) {
  return std::sqrt(dot(in, in, D) + T(kNormEps));
}

// Writes in[0:D] / row_norm(in) to out and returns that norm.
template <typename T>
inline T normalize_row(const T* in, T* out, int64_t D) {
  const T norm = row_norm(in, D);
  for (int64_t d = 0; d < D; ++d) out[d] = in[d] / norm;
  return norm;
}

// Gradient w.r.t. the input row from the gradient w.r.t. the unit row:
// (g - u (u . g)) / norm, where u is the unit row.
template <typename T>
inline void normalize_row_backward(const T* unit, T norm, const T* grad_unit, T* grad_in, int64_t D) {
  const T along = dot(unit, grad_unit, D);
  for (int64_t d = 0; d < D; ++d) grad_in[d] = (grad_unit[d] - unit[d] * along) / norm;
}

}  // namespace see
