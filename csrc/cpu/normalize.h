// Row normalisation x / sqrt(|x|^2 + eps) and its backward, as plain loops (docs/method.md §1, §3.1):
// one row, and rows [begin, end) of a row-major matrix D wide.
#pragma once

#include <cmath>
#include <cstdint>

#include "../see_common.h"

namespace see {
SEE_ISA_BEGIN

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

// Unit rows of `in` into `out`, their norms into `norms`.
template <typename T>
void normalize_rows(const T* in, T* out, T* norms, int64_t begin, int64_t end, int64_t D) {
  for (int64_t i = begin; i < end; ++i) norms[i] = normalize_row(in + i * D, out + i * D, D);
}

// The norms row_norm of the rows of `in`.
template <typename T>
void row_norms(const T* in, T* norms, int64_t begin, int64_t end, int64_t D) {
  for (int64_t i = begin; i < end; ++i) norms[i] = row_norm(in + i * D, D);
}

// normalize_row_backward of each row: grad from the unit rows, their norms and grad_unit.
template <typename T>
void normalize_rows_backward(const T* unit, const T* norms, const T* grad_unit, T* grad, int64_t begin, int64_t end,
                             int64_t D) {
  for (int64_t i = begin; i < end; ++i)
    normalize_row_backward(unit + i * D, norms[i], grad_unit + i * D, grad + i * D, D);
}

// In place, the gradient w.r.t. raw rows from the one w.r.t. their unit rows
// (normalize_row_backward), with the unit rows made on the fly from the raw ones.
template <typename T>
void normalize_rows_backward_from_raw(const T* raw, const T* norms, T* grad, int64_t begin, int64_t end, int64_t D) {
  for (int64_t i = begin; i < end; ++i) {
    const T inverse = T(1) / norms[i];
    const T* row = raw + i * D;
    T* gi = grad + i * D;
    T along = T(0);
    SEE_SIMD_SUM(along)
    for (int64_t d = 0; d < D; ++d) along += row[d] * inverse * gi[d];
    SEE_PRAGMA(omp simd)
    for (int64_t d = 0; d < D; ++d) gi[d] = (gi[d] - row[d] * inverse * along) / norms[i];
  }
}

SEE_ISA_END
}  // namespace see
