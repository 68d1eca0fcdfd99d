// CUDA kernels of batched slerp: one warp per row of (a, b, t) (docs/method.md §6).
//
// The same formulas as cpu/slerp_kernels.h. The per-row scalars (the angle and
// the weights built from sin, cos and atan2) are evaluated in double for both
// dtypes: they are a handful per row, and float32 inputs then lose no digits
// in sinc and its slope beyond those of the chords themselves.
#pragma once

#include <cstdint>

#include "../see_common.h"
#include "../slerp.h"
#include "block_reduce.cuh"
#include "slerp_launch.h"

namespace see {
namespace cuda {

// One (a, b) row as seen by every lane of its warp: norms, angle, and at the
// antipode the fallback tangent e = (e_axis - a_axis â) / e_raw_norm.
template <typename T>
struct SlerpRow {
  const T* a;
  const T* b;
  int64_t D;
  T a_norm, b_norm, chord_minus, chord_plus;  // chords |â - b̂|, |â + b̂|
  double theta;
  bool antipodal;
  int64_t axis;
  T a_axis, e_raw_norm;

  __device__ T a_unit(int64_t d) const { return a[d] / a_norm; }
  __device__ T b_unit(int64_t d) const { return b[d] / b_norm; }
  __device__ T tangent(int64_t d) const {
    T e = -a_axis * a_unit(d);
    if (d == axis) e += T(1);
    return e / e_raw_norm;
  }
};

template <typename T>
__device__ SlerpRow<T> load_row(const T* a, const T* b, int64_t D) {
  const int lane = threadIdx.x % kWarpSize;
  SlerpRow<T> row;
  row.a = a;
  row.b = b;
  row.D = D;
  T a_sq = T(0), b_sq = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) {
    a_sq += a[d] * a[d];
    b_sq += b[d] * b[d];
  }
  row.a_norm = sqrt(warp_sum(a_sq) + T(kNormEps));
  row.b_norm = sqrt(warp_sum(b_sq) + T(kNormEps));
  T minus_sq = T(0), plus_sq = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) {
    const T au = row.a_unit(d), bu = row.b_unit(d);
    const T m = au - bu, p = au + bu;
    minus_sq += m * m;
    plus_sq += p * p;
  }
  minus_sq = warp_sum(minus_sq);
  plus_sq = warp_sum(plus_sq);
  row.antipodal = !(plus_sq > T(0));
  row.chord_minus = sqrt(minus_sq);
  row.chord_plus = sqrt(plus_sq);
  row.theta = angle_from_chords(static_cast<double>(row.chord_minus), static_cast<double>(row.chord_plus));
  row.axis = 0;
  row.a_axis = T(0);
  row.e_raw_norm = T(1);
  if (row.antipodal) {  // the great circle through the best-conditioned axis
    const SlerpRow<T>& r = row;
    row.axis = warp_least_aligned_axis<T>([&r](int64_t d) { return r.a_unit(d); }, D);
    row.a_axis = row.a_unit(row.axis);
    T e_sq = T(0);
    for (int64_t d = lane; d < D; d += kWarpSize) {
      T e = -row.a_axis * row.a_unit(d);
      if (d == row.axis) e += T(1);
      e_sq += e * e;
    }
    row.e_raw_norm = sqrt(warp_sum(e_sq));
  }
  return row;
}

template <typename T>
__global__ void slerp_kernel(const T* a, const T* b, const T* t, int64_t R, int64_t D, T* out) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kSlerpRowsPerBlock + threadIdx.x / kWarpSize;
  if (i >= R) return;  // a whole warp leaves together
  const SlerpRow<T> row = load_row(a + i * D, b + i * D, D);
  const double tt = static_cast<double>(t[i]) * row.theta;
  const T cos_tt = static_cast<T>(cos(tt));
  T* o = out + i * D;
  if (row.antipodal) {
    const T sin_tt = static_cast<T>(sin(tt));
    for (int64_t d = lane; d < D; d += kWarpSize) o[d] = cos_tt * row.a_unit(d) + sin_tt * row.tangent(d);
    return;
  }
  const T ratio = static_cast<T>(static_cast<double>(t[i]) * sinc(tt) / sinc(row.theta));
  // The tangent b̂ - cos(θ) â from the nearer chord (slerp_tangent).
  const bool near = row.chord_minus <= row.chord_plus;
  const T half_sq = T(0.5) * (near ? row.chord_minus * row.chord_minus : row.chord_plus * row.chord_plus);
  for (int64_t d = lane; d < D; d += kWarpSize) {
    const T au = row.a_unit(d);
    o[d] = cos_tt * au + ratio * slerp_tangent(au, row.b_unit(d), half_sq, near);
  }
}

// The gradient w.r.t. the unit rows is ga g + aa â + ab b̂ (resp. gb g + ba â +
// bb b̂; slerp_row_grad in slerp.h), or at the antipode the tangent's
// derivative; see slerp_row_backward on the CPU.
template <typename T>
struct UnitRowGrad {
  bool antipodal;
  T ga, aa, ab, gb, ba, bb;             // regular rows
  T cos_tt, sin_tt, Ge, p_dot_a;        // antipodal rows
};

template <typename T>
__device__ T a_unit_grad(const SlerpRow<T>& row, const UnitRowGrad<T>& w, const T* g, int64_t d) {
  if (!w.antipodal) return w.ga * g[d] + w.aa * row.a_unit(d) + w.ab * row.b_unit(d);
  const T p = g[d] - w.Ge * row.tangent(d);
  T bar = w.cos_tt * g[d] - w.sin_tt * row.a_axis * p / row.e_raw_norm;
  if (d == row.axis) bar -= w.sin_tt * w.p_dot_a / row.e_raw_norm;
  return bar;
}

template <typename T>
__device__ T b_unit_grad(const SlerpRow<T>& row, const UnitRowGrad<T>& w, const T* g, int64_t d) {
  return w.antipodal ? T(0) : w.gb * g[d] + w.ba * row.a_unit(d) + w.bb * row.b_unit(d);
}

template <typename T>
__global__ void slerp_backward_kernel(const T* grad, const T* a, const T* b, const T* t, int64_t R, int64_t D,
                                      T* grad_a, T* grad_b, T* grad_t) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kSlerpRowsPerBlock + threadIdx.x / kWarpSize;
  if (i >= R) return;
  const SlerpRow<T> row = load_row(a + i * D, b + i * D, D);
  const T* g = grad + i * D;
  const double ti = static_cast<double>(t[i]);
  const double theta = row.theta, tt = ti * theta;
  // G_a = g.â, and G_T = g.T with T the forward's tangent (slerp_tangent).
  const bool near = row.chord_minus <= row.chord_plus;
  const T half_sq = T(0.5) * (near ? row.chord_minus * row.chord_minus : row.chord_plus * row.chord_plus);
  T P = T(0), G_T = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) {
    const T au = row.a_unit(d);
    P += g[d] * au;
    G_T += g[d] * slerp_tangent(au, row.b_unit(d), half_sq, near);
  }
  P = warp_sum(P);
  G_T = warp_sum(G_T);
  UnitRowGrad<T> w{};
  w.antipodal = row.antipodal;
  double t_bar;
  if (row.antipodal) {  // out = cos(tθ) â + sin(tθ) e(â); θ = π carries no gradient
    w.cos_tt = static_cast<T>(cos(tt));
    w.sin_tt = static_cast<T>(sin(tt));
    T Ge = T(0);
    for (int64_t d = lane; d < D; d += kWarpSize) Ge += g[d] * row.tangent(d);
    w.Ge = warp_sum(Ge);
    T p_dot_a = T(0);
    for (int64_t d = lane; d < D; d += kWarpSize) p_dot_a += (g[d] - w.Ge * row.tangent(d)) * row.a_unit(d);
    w.p_dot_a = warp_sum(p_dot_a);
    t_bar = theta * (-sin(tt) * static_cast<double>(P) + cos(tt) * static_cast<double>(w.Ge));
  } else {
    const SlerpRowGrad<double> c =
        slerp_row_grad(ti, theta, static_cast<double>(row.chord_minus), static_cast<double>(row.chord_plus),
                       static_cast<double>(half_sq), near, static_cast<double>(P), static_cast<double>(G_T));
    w.ga = static_cast<T>(c.ga), w.aa = static_cast<T>(c.aa), w.ab = static_cast<T>(c.ab);
    w.gb = static_cast<T>(c.gb), w.ba = static_cast<T>(c.ba), w.bb = static_cast<T>(c.bb);
    t_bar = c.t_bar;
  }
  // Through the normalisations: (ū - u (u . ū)) / norm.
  T a_dot = T(0), b_dot = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) {
    a_dot += row.a_unit(d) * a_unit_grad(row, w, g, d);
    b_dot += row.b_unit(d) * b_unit_grad(row, w, g, d);
  }
  a_dot = warp_sum(a_dot);
  b_dot = warp_sum(b_dot);
  T* ga = grad_a + i * D;
  T* gb = grad_b + i * D;
  for (int64_t d = lane; d < D; d += kWarpSize) {
    ga[d] = (a_unit_grad(row, w, g, d) - row.a_unit(d) * a_dot) / row.a_norm;
    gb[d] = (b_unit_grad(row, w, g, d) - row.b_unit(d) * b_dot) / row.b_norm;
  }
  if (lane == 0) grad_t[i] = static_cast<T>(t_bar);
}

}  // namespace cuda
}  // namespace see
