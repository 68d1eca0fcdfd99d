// Per-sample CPU loops of the SEE expansion (docs/method.md §3), forward and backward.
//
// One source at a time on raw pointers; the ATen glue runs sources in parallel.
// The scratch frame is (n + 1) x D; `gs_coef` ((n - 1) x (n + 1)) keeps the
// Gram-Schmidt coefficients: gs_coef[j][l] = v_j's raw noise projected on f[l]
// (l < j + 2), and gs_coef[j][j + 2] = the norm that normalised v_j. These are
// the R factor of the QR decomposition [ŵ, u, noise] = [ŵ, u, V] R that the
// backward needs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "../expansion.h"
#include "normalize.h"

namespace see {
namespace cpu {

// Scratch for one source at a time, as raw pointers (expansion_scratch.h owns
// the memory); each loop names the buffers it uses.
template <typename T>
struct ExpansionBuffers {
  T* frame;      // (n + 1) x D
  T* z_unit;     // D: ẑ
  T* draws;      // (n - 1) x D: a copy of the draws for the Gram-Schmidt fallback
  T* gs_coef;    // (n + 1) x (n + 1)
  T* pass_coef;  // n + 1
  T* prefix;     // D
  double* gram;  // (n + 1) x (n + 1): the Cholesky factor
  T* h;          // n x D, backward only
  T* work;       // 2 D, backward only
  T* qr_work;    // (n - 1)^2 + 4 (n - 1), backward only
};

SEE_ISA_BEGIN

template <typename T>
inline void axpy(T alpha, const T* x, T* y, int64_t D) {
  for (int64_t d = 0; d < D; ++d) y[d] += alpha * x[d];
}

// c[l] = f_l . v for the first `rows` frame rows (four at a time, so that the
// sums run side by side), then v -= sum_l c[l] f_l; c is added to coef.
template <typename T>
void project_out(const T* frame, int64_t rows, int64_t D, T* v, T* coef, T* c) {
  int64_t l = 0;
  for (; l + 4 <= rows; l += 4) {
    const T *f0 = frame + l * D, *f1 = f0 + D, *f2 = f1 + D, *f3 = f2 + D;
    T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
    SEE_PRAGMA(omp simd reduction(+ : s0, s1, s2, s3))
    for (int64_t d = 0; d < D; ++d) {
      s0 += f0[d] * v[d];
      s1 += f1[d] * v[d];
      s2 += f2[d] * v[d];
      s3 += f3[d] * v[d];
    }
    c[l] = s0, c[l + 1] = s1, c[l + 2] = s2, c[l + 3] = s3;
  }
  for (; l < rows; ++l) c[l] = dot(frame + l * D, v, D);
  for (l = 0; l + 4 <= rows; l += 4) {
    const T *f0 = frame + l * D, *f1 = f0 + D, *f2 = f1 + D, *f3 = f2 + D;
    const T c0 = c[l], c1 = c[l + 1], c2 = c[l + 2], c3 = c[l + 3];
    for (int64_t d = 0; d < D; ++d) v[d] -= (c0 * f0[d] + c1 * f1[d]) + (c2 * f2[d] + c3 * f3[d]);
  }
  for (; l < rows; ++l) axpy(-c[l], frame + l * D, v, D);
  for (l = 0; l < rows; ++l) coef[l] += c[l];
}

// Most Gram-Schmidt passes for one draw (one is the rule, two when it cancels).
constexpr int kMaxProjections = 4;


// Whether the residual r = ẑ - aŵ (rho_sq = |r|²) is rounding alone
// (docs/method.md §3.6): |r_⊥|² <= (8η)² (a² + |r|²), r_⊥ its part orthogonal
// to ŵ, η the unit roundoff. NaN counts as on the axis.
template <typename T>
bool on_the_axis(const T* r, const T* w_unit, T a, T rho_sq, int64_t D) {
  const T w_sq = dot(w_unit, w_unit, D);
  const T along = w_sq > T(0) ? dot(r, w_unit, D) / w_sq : T(0);
  T perp_sq = T(0);
  for (int64_t d = 0; d < D; ++d) {
    const T perp = r[d] - along * w_unit[d];
    perp_sq += perp * perp;
  }
  return !(perp_sq > on_axis_rounding_sq<T>() * (a * a + rho_sq));
}

// Rows 0 and 1 of the frame, ŵ and u, from the unit source and unit proxy.
template <typename T>
SourceGeometry<T> frame_axes(const T* z_unit, const T* w_unit, int64_t D, T* frame) {
  SourceGeometry<T> geo{};
  geo.z_norm = T(1);
  T* u = frame + D;
  if (frame != w_unit) std::copy(w_unit, w_unit + D, frame);
  geo.a = dot(z_unit, w_unit, D);
  for (int64_t d = 0; d < D; ++d) u[d] = z_unit[d] - geo.a * w_unit[d];
  const T rho_sq = dot(u, u, D);
  geo.degenerate = on_the_axis(u, w_unit, geo.a, rho_sq, D);
  if (!geo.degenerate) {
    geo.rho = std::sqrt(rho_sq);
    for (int64_t d = 0; d < D; ++d) u[d] = u[d] / geo.rho;
  } else {  // docs/method.md §3.6: any unit u ⊥ ŵ
    geo.rho = T(0);
    const int64_t axis = least_aligned_axis(w_unit, D);
    for (int64_t d = 0; d < D; ++d) u[d] = -w_unit[axis] * w_unit[d];
    u[axis] += T(1);
    const T norm = std::sqrt(dot(u, u, D));
    for (int64_t d = 0; d < D; ++d) u[d] = u[d] / norm;
  }
  return geo;
}

// Rows 2..n of the frame: the draws (n - 1 rows of D) orthonormalised against
// the rows before them; see the file comment for gs_coef. Returns whether a
// draw lies in the span of the rows before it (docs/method.md §3.2).
template <typename T>
bool gram_schmidt_draws(const T* noise, int64_t n, int64_t D, T* frame, T* gs_coef, T* pass_coef) {
  bool in_span = false;
  for (int64_t j = 0; j + 1 < n; ++j) {
    T* v = frame + (j + 2) * D;
    std::copy(noise + j * D, noise + (j + 1) * D, v);
    // Classical Gram-Schmidt, each pass a block of independent dot products,
    // which pipeline, repeated while a pass shrinks the draw below 1/sqrt(2) of
    // its length (Daniel-Gragg-Kaufman-Stewart): then cancellation may have left
    // it off orthogonal, and the next pass restores it. A Gaussian draw in
    // D >> n dimensions keeps ~all its length, so one pass is the rule. The same
    // frame as the reference's two-pass modified Gram-Schmidt, to rounding; the
    // passes' coefficients add up to R.
    T* coef = gs_coef + j * (n + 1);
    for (int64_t l = 0; l < j + 2; ++l) coef[l] = T(0);
    const T draw_sq = dot(v, v, D);
    T norm_sq = draw_sq;
    for (int pass = 0; pass < kMaxProjections; ++pass) {
      project_out(frame, j + 2, D, v, coef, pass_coef);
      const T shrunk_sq = dot(v, v, D);
      const bool settled = shrunk_sq > T(0.5) * norm_sq;
      norm_sq = shrunk_sq;
      if (settled) break;
    }
    // What is left is rounding alone: no direction (NaN counts as none).
    const bool lost = !(norm_sq > span_rounding_sq<T>(j + 2) * draw_sq);
    in_span = in_span || lost;
    const T norm = lost ? T(1) : std::sqrt(norm_sq);
    for (int64_t d = 0; d < D; ++d) v[d] = v[d] / norm;
    gs_coef[j * (n + 1) + j + 2] = norm;
  }
  return in_span;
}

// Builds ẑ and the frame of one source; see the file comment for the layout.
template <typename T>
SourceGeometry<T> build_frame(const T* z, const T* w, const T* noise, int64_t n, int64_t D, T* z_unit, T* frame,
                           T* gs_coef, T* pass_coef) {
  normalize_row(w, frame, D);
  const T z_norm = normalize_row(z, z_unit, D);
  SourceGeometry<T> geo = frame_axes(z_unit, frame, D, frame);
  geo.z_norm = z_norm;
  geo.draw_in_span = gram_schmidt_draws(noise, n, D, frame, gs_coef, pass_coef);
  return geo;
}

// The n synthetic points of one source (n x D) from its frame.
//
// The simplex rows are a staircase (mmd_centers.h): below the diagonal, column j
// holds one value in every row. So point k is a running sum over the frame plus
// one diagonal term, O(n D) instead of O(n^2 D). `prefix` is D of scratch.
template <typename T>
void emit_points(const SourceGeometry<T>& geo, const T* frame, int64_t n, int64_t D, T* out, T* prefix) {
  if (geo.draw_in_span) {  // docs/method.md §3.2: the frame, and the points, are undefined
    std::fill(out, out + n * D, std::numeric_limits<T>::quiet_NaN());
    return;
  }
  const T* w_unit = frame;
  std::fill(prefix, prefix + D, T(0));
  for (int64_t k = 0; k < n; ++k) {
    axpy(simplex_coefficient<T>(n - 1, k, n), frame + (k + 1) * D, prefix, D);  // below-diagonal entry of column k
    const T diagonal = k + 1 < n ? simplex_coefficient<T>(k, k + 1, n) : T(0);
    const T* next = frame + (k + 2 < n + 1 ? k + 2 : 0) * D;  // f[k + 2], unused when diagonal == 0
    T* point = out + k * D;
    for (int64_t d = 0; d < D; ++d) point[d] = geo.a * w_unit[d] + geo.rho * (prefix[d] + diagonal * next[d]);
  }
}

// Gradient w.r.t. the source z of one source, given grad (n x D) w.r.t. its
// points; h (n x D), work (2 D) and qr_work ((n-1)^2 + 4 (n-1)) are scratch.
//
// With h_j = sum_k Bw[k][j] grad_k, the points depend on r = ẑ - aŵ through
// rho (d rho/dr = u), through u = r/rho, and through the noise directions V,
// which Gram-Schmidt makes depend on u. For the last, the QR backward
// (A = V R22 with A = (I - ŵŵ^T - uu^T) G, dL/dV = rho H):
//   dL/dA = Y R22^{-T},  Y = H + V copyltu(-H^T V)   (times rho)
//   dL/du = -dL/dA (G^T u) - G (dL/dA)^T u,  and V^T u = 0 gives
//   (dL/dA)^T u = R22^{-1} H^T u.
// The factor rho cancels the 1/rho of du/dr, so nothing divides by rho.
// Degenerate sources (rho == 0) get no gradient through r, as in the reference;
// a source whose points are undefined (a draw in the span) gets NaN.
template <typename T>
void source_backward(const SourceGeometry<T>& geo, const T* frame, const T* gs_coef, const T* z_unit, const T* noise,
                     const T* grad, int64_t n, int64_t D, T* h, T* work, T* qr_work, T* grad_z) {
  if (geo.draw_in_span) {
    std::fill(grad_z, grad_z + D, std::numeric_limits<T>::quiet_NaN());
    return;
  }
  const T* w_unit = frame;
  const T* u = frame + D;
  T a_bar = T(0);
  for (int64_t k = 0; k < n; ++k) a_bar += dot(grad + k * D, w_unit, D);
  // h_j = lower_j * sum_{k >= j} grad_k + diag_j * grad_{j-1}: the staircase again,
  // as a running suffix sum (in work, free until r_bar below).
  T* suffix = work;
  std::fill(suffix, suffix + D, T(0));
  for (int64_t j = n - 1; j >= 0; --j) {
    axpy(T(1), grad + j * D, suffix, D);
    const T lower = simplex_coefficient<T>(n - 1, j, n);
    const T diagonal = j >= 1 ? simplex_coefficient<T>(j - 1, j, n) : T(0);
    const T* previous = grad + (j >= 1 ? j - 1 : 0) * D;
    T* hj = h + j * D;
    for (int64_t d = 0; d < D; ++d) hj[d] = lower * suffix[d] + diagonal * previous[d];
  }
  T* r_bar = work;  // D
  std::fill(r_bar, r_bar + D, T(0));
  if (!geo.degenerate) {
    const int64_t m = n - 1;  // number of noise directions
    T* u_bar = work + D;      // D: (dL/du) / rho, tangential part taken below
    std::copy(h, h + D, u_bar);
    if (m > 0) {
      const T* V = frame + 2 * D;
      const T* H = h + D;  // h_1 .. h_{n-1}
      auto R22 = [&](int64_t l, int64_t j) { return gs_coef[j * (n + 1) + l + 2]; };
      T *M = qr_work, *t = M + m * m, *ct = t + m, *q = ct + m, *s = q + m;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t l = 0; l < m; ++l) M[i * m + l] = -dot(H + i * D, V + l * D, D);
      // t = R22^{-T} c, c_j = noise_j . u (forward substitution).
      for (int64_t j = 0; j < m; ++j) {
        T acc = gs_coef[j * (n + 1) + 1];
        for (int64_t l = 0; l < j; ++l) acc -= R22(l, j) * t[l];
        t[j] = acc / R22(j, j);
      }
      for (int64_t i = 0; i < m; ++i) {  // ct = copyltu(M) t
        T acc = T(0);
        for (int64_t l = 0; l < m; ++l) acc += (i >= l ? M[i * m + l] : M[l * m + i]) * t[l];
        ct[i] = acc;
      }
      for (int64_t i = 0; i < m; ++i) q[i] = dot(H + i * D, u, D);
      for (int64_t j = m - 1; j >= 0; --j) {  // s = R22^{-1} q (back substitution)
        T acc = q[j];
        for (int64_t l = j + 1; l < m; ++l) acc -= R22(j, l) * s[l];
        s[j] = acc / R22(j, j);
      }
      for (int64_t i = 0; i < m; ++i) {
        axpy(-t[i], H + i * D, u_bar, D);
        axpy(-ct[i], V + i * D, u_bar, D);
        axpy(-s[i], noise + i * D, u_bar, D);
      }
    }
    T rho_bar = T(0);
    for (int64_t j = 0; j < n; ++j) rho_bar += dot(h + j * D, frame + (j + 1) * D, D);
    const T u_bar_along_u = dot(u_bar, u, D);
    for (int64_t d = 0; d < D; ++d) r_bar[d] = rho_bar * u[d] + u_bar[d] - u_bar_along_u * u[d];
  }
  // r = ẑ - (ẑ.ŵ)ŵ and a = ẑ.ŵ, then ẑ = z / |z|.
  T* z_unit_bar = work + D;
  const T r_bar_along_w = dot(r_bar, w_unit, D);
  for (int64_t d = 0; d < D; ++d) z_unit_bar[d] = r_bar[d] + (a_bar - r_bar_along_w) * w_unit[d];
  normalize_row_backward(z_unit, geo.z_norm, z_unit_bar, grad_z, D);
}

// The expansion op, one source: its n points (n x D, into out) from z, w and
// its n - 1 draws. Uses the scratch's frame, z_unit, gs_coef, pass_coef and prefix.
template <typename T>
void expand_source(const T* z, const T* w, const T* noise, int64_t n, int64_t D, const ExpansionBuffers<T>& scratch,
                   T* out) {
  const SourceGeometry<T> geo =
      build_frame(z, w, noise, n, D, scratch.z_unit, scratch.frame, scratch.gs_coef, scratch.pass_coef);
  emit_points(geo, scratch.frame, n, D, out, scratch.prefix);
}

// The expansion op's backward, one source: dL/dz (D, into grad_z) from the
// gradient w.r.t. its points (n x D). Uses the scratch's frame, z_unit,
// gs_coef, pass_coef, h, work and qr_work.
template <typename T>
void expand_source_backward(const T* z, const T* w, const T* noise, const T* grad, int64_t n, int64_t D,
                            const ExpansionBuffers<T>& scratch, T* grad_z) {
  const SourceGeometry<T> geo =
      build_frame(z, w, noise, n, D, scratch.z_unit, scratch.frame, scratch.gs_coef, scratch.pass_coef);
  source_backward(geo, scratch.frame, scratch.gs_coef, scratch.z_unit, noise, grad, n, D, scratch.h, scratch.work,
                  scratch.qr_work, grad_z);
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
