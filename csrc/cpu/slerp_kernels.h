// Per-row CPU loops of batched slerp, forward and backward (docs/method.md §6).
//
// Plain C++ on raw pointers (no ATen), so that the C++ tests can run them; the
// ATen glue in slerp_cpu.cpp hands rows to threads. The weights are those of
// slerp.h; the whole row is computed in the input's dtype.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "../expansion.h"
#include "normalize.h"
#include "../slerp.h"

namespace see {
namespace cpu {

// Unit rows of one (a, b) pair and the angle between them.
template <typename T>
struct SlerpRow {
  std::vector<T> a_unit, b_unit, e;  // e: the fallback tangent at the antipode
  T a_norm{}, b_norm{}, theta{}, chord_minus{}, chord_plus{};
  T e_raw_norm = T(1);  // antipodal rows only, as axis
  int64_t axis = 0;
  bool antipodal = false;

  explicit SlerpRow(int64_t D) : a_unit(D), b_unit(D), e(D) {}

  void load(const T* a, const T* b, int64_t D) {
    a_norm = normalize_row(a, a_unit.data(), D);
    b_norm = normalize_row(b, b_unit.data(), D);
    T minus_sq = T(0), plus_sq = T(0);
    for (int64_t d = 0; d < D; ++d) {
      const T m = a_unit[d] - b_unit[d], p = a_unit[d] + b_unit[d];
      minus_sq += m * m;
      plus_sq += p * p;
    }
    antipodal = !(plus_sq > T(0));
    chord_minus = std::sqrt(minus_sq);
    chord_plus = std::sqrt(plus_sq);
    theta = angle_from_chords(chord_minus, chord_plus);
    axis = 0;  // what an earlier row left has no meaning here
    e_raw_norm = T(1);
    if (antipodal) {  // the great circle through the best-conditioned axis
      axis = least_aligned_axis(a_unit.data(), D);
      for (int64_t d = 0; d < D; ++d) e[d] = -a_unit[axis] * a_unit[d];
      e[axis] += T(1);
      T sq = T(0);
      for (int64_t d = 0; d < D; ++d) sq += e[d] * e[d];
      e_raw_norm = std::sqrt(sq);
      for (int64_t d = 0; d < D; ++d) e[d] = e[d] / e_raw_norm;
    }
  }
};

template <typename T>
void slerp_row(const SlerpRow<T>& row, T t, int64_t D, T* out) {
  const T tt = t * row.theta;
  if (row.antipodal) {
    for (int64_t d = 0; d < D; ++d) out[d] = std::cos(tt) * row.a_unit[d] + std::sin(tt) * row.e[d];
    return;
  }
  const T ratio = t * sinc(tt) / sinc(row.theta);
  const T cos_tt = std::cos(tt);
  const bool near = row.chord_minus <= row.chord_plus;
  const T half_sq = T(0.5) * (near ? row.chord_minus * row.chord_minus : row.chord_plus * row.chord_plus);
  for (int64_t d = 0; d < D; ++d) {
    const T a = row.a_unit[d], b = row.b_unit[d];
    out[d] = cos_tt * a + ratio * slerp_tangent(a, b, half_sq, near);
  }
}

// Gradients w.r.t. the unit rows and t; see slerp.h (slerp_row_grad) for the weights.
template <typename T>
T slerp_row_backward(const SlerpRow<T>& row, T t, const T* g, int64_t D, T* a_unit_bar, T* b_unit_bar) {
  const T theta = row.theta, tt = t * theta;
  if (row.antipodal) {  // out = cos(tθ) â + sin(tθ) e(â); θ = π carries no gradient
    T P = T(0), Ge = T(0);
    for (int64_t d = 0; d < D; ++d) {
      P += g[d] * row.a_unit[d];
      Ge += g[d] * row.e[d];
    }
    T p_dot_a = T(0);  // p = (I - e e^T) g
    for (int64_t d = 0; d < D; ++d) p_dot_a += (g[d] - Ge * row.e[d]) * row.a_unit[d];
    const T a_axis = row.a_unit[row.axis];
    for (int64_t d = 0; d < D; ++d) {
      const T p = g[d] - Ge * row.e[d];
      a_unit_bar[d] = std::cos(tt) * g[d] - std::sin(tt) * a_axis * p / row.e_raw_norm;
      b_unit_bar[d] = T(0);
    }
    a_unit_bar[row.axis] -= std::sin(tt) * p_dot_a / row.e_raw_norm;
    return theta * (-std::sin(tt) * P + std::cos(tt) * Ge);
  }
  const bool near = row.chord_minus <= row.chord_plus;
  const T half_sq = T(0.5) * (near ? row.chord_minus * row.chord_minus : row.chord_plus * row.chord_plus);
  T G_a = T(0), G_T = T(0);  // g.â and g.T, T the tangent of the forward
  for (int64_t d = 0; d < D; ++d) {
    const T a = row.a_unit[d], b = row.b_unit[d];
    G_a += g[d] * a;
    G_T += g[d] * slerp_tangent(a, b, half_sq, near);
  }
  const SlerpRowGrad<T> w = slerp_row_grad(t, theta, row.chord_minus, row.chord_plus, half_sq, near, G_a, G_T);
  for (int64_t d = 0; d < D; ++d) {
    const T a = row.a_unit[d], b = row.b_unit[d];
    a_unit_bar[d] = w.ga * g[d] + w.aa * a + w.ab * b;
    b_unit_bar[d] = w.gb * g[d] + w.ba * a + w.bb * b;
  }
  return w.t_bar;
}

}  // namespace cpu
}  // namespace see
