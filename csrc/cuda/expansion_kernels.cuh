// Block-level device code of the SEE expansion: one thread block per source.
//
// The math is that of cpu/expansion_kernels.h (read its comments for the
// frame layout and the QR backward): the same normalisations, the same frame
// and the same triangular solves, with sums taken in another order (strided
// per thread, then across the warp and the block). Every draw gets two passes
// of classical Gram-Schmidt, where the CPU takes a second (up to a fourth)
// only when a pass cancels: the frames agree to rounding. Thread j owns the
// coordinates d = j, j + blockDim, ... of every D-vector, so the elementwise
// steps need no barrier; a lone dot product is a block reduction whose result
// all threads share, and batches of independent dots (a Gram-Schmidt pass,
// the O(n^2) dots of the backward) go one per warp.
//
// The simplex rows have a staircase structure (mmd_centers.h): the entry of
// column j is `lower[j]` in every row below the diagonal and `diag[j]` on it.
// So point k is a prefix sum over the frame, and h_j a suffix sum over the
// incoming gradients: O(n D) per source instead of O(n^2 D), in the order of
// the CPU loops.
#pragma once

#include <cstdint>

#include "../expansion.h"
#include "../see_common.h"
#include "block_reduce.cuh"
#include "expansion_workspace.cuh"

namespace see {
namespace cuda {

// lower[j] = Bw[k + 1][j] for k >= j; diag[j] = Bw[j][j] (simplex_coefficient's indexing).
template <typename T>
__device__ void fill_simplex_columns(int64_t n, T* lower, T* diag) {
  for (int64_t j = threadIdx.x; j < n + 1; j += blockDim.x) {
    if (j < n) lower[j] = simplex_coefficient<T>(n - 1, j, n);
    diag[j] = (j >= 1 && j < n) ? simplex_coefficient<T>(j - 1, j, n) : T(0);
  }
  __syncthreads();
}

// ŵ, u and the Gram-Schmidt noise directions of one source (build_frame on the CPU).
template <typename T>
__device__ SourceGeometry<T> build_frame(const T* z, const T* w, const T* noise, int64_t n, int64_t D, T* frame,
                                         T* gs_coef, T* pass_coef) {
  const int64_t tid = threadIdx.x, stride = blockDim.x;
  T* w_unit = frame;
  T* u = frame + D;
  SourceGeometry<T> geo;
  geo.draw_in_span = false;
  T w_sq = T(0), z_sq = T(0);
  for (int64_t d = tid; d < D; d += stride) {
    w_sq += w[d] * w[d];
    z_sq += z[d] * z[d];
  }
  const T w_norm = sqrt(block_sum(w_sq) + T(kNormEps));
  geo.z_norm = sqrt(block_sum(z_sq) + T(kNormEps));
  T zw = T(0);
  for (int64_t d = tid; d < D; d += stride) {
    w_unit[d] = w[d] / w_norm;
    zw += (z[d] / geo.z_norm) * w_unit[d];
  }
  geo.a = block_sum(zw);
  T r_sq = T(0), rw = T(0), ww = T(0);
  for (int64_t d = tid; d < D; d += stride) {
    u[d] = z[d] / geo.z_norm - geo.a * w_unit[d];
    r_sq += u[d] * u[d];
    rw += u[d] * w_unit[d];
    ww += w_unit[d] * w_unit[d];
  }
  r_sq = block_sum(r_sq);
  rw = block_sum(rw);
  ww = block_sum(ww);
  // On the axis to rounding (on_the_axis on the CPU): r's part orthogonal to ŵ decides.
  const T along = ww > T(0) ? rw / ww : T(0);
  T perp_sq = T(0);
  for (int64_t d = tid; d < D; d += stride) {
    const T perp = u[d] - along * w_unit[d];
    perp_sq += perp * perp;
  }
  perp_sq = block_sum(perp_sq);
  geo.degenerate = !(perp_sq > on_axis_rounding_sq<T>() * (geo.a * geo.a + r_sq));
  if (!geo.degenerate) {
    geo.rho = sqrt(r_sq);
    for (int64_t d = tid; d < D; d += stride) u[d] = u[d] / geo.rho;
  } else {  // docs/method.md §3.6: any unit u ⊥ ŵ
    geo.rho = T(0);
    const int64_t axis = block_least_aligned_axis(w_unit, D);  // w_unit is published by the barriers above
    const T w_axis = w_unit[axis];
    T u_sq = T(0);
    for (int64_t d = tid; d < D; d += stride) {
      T v = -w_axis * w_unit[d];
      if (d == axis) v += T(1);
      u[d] = v;
      u_sq += v * v;
    }
    const T norm = sqrt(block_sum(u_sq));
    for (int64_t d = tid; d < D; d += stride) u[d] = u[d] / norm;
  }
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  for (int64_t j = 0; j + 1 < n; ++j) {
    T* v = frame + (j + 2) * D;
    T* coef = gs_coef + j * (n + 1);
    const T* g = noise + j * D;
    T g_sq = T(0);
    for (int64_t d = tid; d < D; d += stride) {
      v[d] = g[d];
      g_sq += g[d] * g[d];
    }
    const T draw_sq = block_sum(g_sq);
    if (tid == 0) {
      for (int64_t l = 0; l < j + 2; ++l) coef[l] = T(0);
    }
    // Two passes of classical Gram-Schmidt, as the CPU: the dots of a pass are
    // independent (one warp each), and their sums over both passes are R's column.
    for (int pass = 0; pass < 2; ++pass) {
      __syncthreads();  // v complete before the warps read all of it
      for (int64_t l = warp; l < j + 2; l += num_warps) {
        const T c = warp_dot(v, frame + l * D, D);
        if (lane == 0) pass_coef[l] = c;
      }
      __syncthreads();
      for (int64_t d = tid; d < D; d += stride) {
        T along = T(0);
        for (int64_t l = 0; l < j + 2; ++l) along += pass_coef[l] * frame[l * D + d];
        v[d] -= along;
      }
      if (tid == 0) {
        for (int64_t l = 0; l < j + 2; ++l) coef[l] += pass_coef[l];
      }
    }
    T v_sq = T(0);
    for (int64_t d = tid; d < D; d += stride) v_sq += v[d] * v[d];
    v_sq = block_sum(v_sq);
    // Rounding alone is left (gram_schmidt_draws on the CPU): no direction.
    const bool lost = !(v_sq > span_rounding_sq<T>(j + 2) * draw_sq);
    geo.draw_in_span = geo.draw_in_span || lost;
    const T norm = lost ? T(1) : sqrt(v_sq);
    for (int64_t d = tid; d < D; d += stride) v[d] = v[d] / norm;
    if (tid == 0) coef[j + 2] = norm;
  }
  __syncthreads();  // gs_coef, written by thread 0, is read by all
  return geo;
}

// z_k = a ŵ + rho sum_j Bw[k][j] f[1 + j] for k < n (emit_points on the CPU).
template <typename T>
__device__ void emit_points(const SourceGeometry<T>& geo, const T* frame, const T* lower, const T* diag, int64_t n,
                            int64_t D, T* out) {
  if (geo.draw_in_span) {  // docs/method.md §3.2: the frame, and the points, are undefined
    for (int64_t e = threadIdx.x; e < n * D; e += blockDim.x) out[e] = T(NAN);
    return;
  }
  const T* w_unit = frame;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const T along_w = geo.a * w_unit[d];
    T prefix = T(0);  // sum_{j <= k} lower[j] f[1 + j]
    for (int64_t k = 0; k < n; ++k) {
      prefix += lower[k] * frame[(k + 1) * D + d];
      T point = prefix;
      if (k + 1 < n) point += diag[k + 1] * frame[(k + 2) * D + d];
      out[k * D + d] = along_w + geo.rho * point;
    }
  }
}

// Row index i and column l <= i of entry p of a row-major lower triangle.
__device__ inline void triangle_entry(int64_t p, int64_t& i, int64_t& l) {
  i = static_cast<int64_t>((sqrt(8.0 * static_cast<double>(p) + 1.0) - 1.0) / 2.0);
  while (i * (i + 1) / 2 > p) --i;
  while ((i + 1) * (i + 2) / 2 <= p) ++i;
  l = p - i * (i + 1) / 2;
}

// dL/du / rho of the noise directions' dependence on u (the QR backward of
// source_backward on the CPU): fills t, q, -H^T V, s and ct.
template <typename T>
__device__ void qr_backward_coefficients(const ExpansionBuffers<T>& w, int64_t n, int64_t D) {
  const int64_t m = n - 1;
  const T* u = w.frame + D;
  const T* V = w.frame + 2 * D;
  const T* H = w.h + D;  // h_1 .. h_{n-1}
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  const int64_t num_dots = m + m * (m + 1) / 2;
  for (int64_t task = warp; task < num_dots; task += num_warps) {
    if (task < m) {
      const T q = warp_dot(H + task * D, u, D);
      if (lane == 0) w.q[task] = q;
    } else {
      int64_t i, l;
      triangle_entry(task - m, i, l);
      const T dot = warp_dot(H + i * D, V + l * D, D);
      if (lane == 0) w.neg_HtV[task - m] = -dot;
    }
  }
  __syncthreads();
  auto R22 = [&](int64_t l, int64_t j) { return w.gs_coef[j * (n + 1) + l + 2]; };
  if (threadIdx.x == 0) {  // t = R22^{-T} c, c_j = noise_j . u (forward substitution)
    for (int64_t j = 0; j < m; ++j) {
      T acc = w.gs_coef[j * (n + 1) + 1];
      for (int64_t l = 0; l < j; ++l) acc -= R22(l, j) * w.t[l];
      w.t[j] = acc / R22(j, j);
    }
  } else if (threadIdx.x == kWarpSize) {  // s = R22^{-1} q (back substitution), on another warp
    for (int64_t j = m - 1; j >= 0; --j) {
      T acc = w.q[j];
      for (int64_t l = j + 1; l < m; ++l) acc -= R22(j, l) * w.s[l];
      w.s[j] = acc / R22(j, j);
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {  // ct = copyltu(M) t
    T acc = T(0);
    for (int64_t l = 0; l < m; ++l) {
      const T M_il = i >= l ? w.neg_HtV[i * (i + 1) / 2 + l] : w.neg_HtV[l * (l + 1) / 2 + i];
      acc += M_il * w.t[l];
    }
    w.ct[i] = acc;
  }
  __syncthreads();
}

// Gradient w.r.t. z of one source, given grad (n x D) w.r.t. its points.
template <typename T>
__device__ void source_backward(const SourceGeometry<T>& geo, const ExpansionBuffers<T>& w, const T* z,
                                const T* noise, const T* grad, int64_t n, int64_t D, T* grad_z) {
  const int64_t tid = threadIdx.x, stride = blockDim.x, m = n - 1;
  if (geo.draw_in_span) {  // undefined points, undefined gradient (uniform over the block)
    for (int64_t d = tid; d < D; d += stride) grad_z[d] = T(NAN);
    return;
  }
  const T* w_unit = w.frame;
  const T* u = w.frame + D;
  // h_j = diag[j] grad_{j-1} + lower[j] sum_{k >= j} grad_k, and a_bar = sum_k grad_k . ŵ.
  T a_part = T(0);
  for (int64_t d = tid; d < D; d += stride) {
    T suffix = T(0);
    for (int64_t j = n - 1; j >= 0; --j) {
      suffix += grad[j * D + d];
      T hj = w.lower[j] * suffix;
      if (j >= 1) hj += w.diag[j] * grad[(j - 1) * D + d];
      w.h[j * D + d] = hj;
    }
    a_part += suffix * w_unit[d];
  }
  const T a_bar = block_sum(a_part);  // its barriers also publish h
  T* r_bar = w.u_bar;                 // u_bar becomes r_bar in place
  if (!geo.degenerate) {
    if (m > 0) qr_backward_coefficients(w, n, D);
    T rho_part = T(0), uu_part = T(0);
    for (int64_t d = tid; d < D; d += stride) {
      T ub = w.h[d];
      for (int64_t i = 0; i < m; ++i) {
        ub -= w.t[i] * w.h[(i + 1) * D + d];
        ub -= w.ct[i] * w.frame[(i + 2) * D + d];
        ub -= w.s[i] * noise[i * D + d];
      }
      w.u_bar[d] = ub;
      uu_part += ub * u[d];
      for (int64_t j = 0; j < n; ++j) rho_part += w.h[j * D + d] * w.frame[(j + 1) * D + d];
    }
    const T rho_bar = block_sum(rho_part);
    const T u_bar_along_u = block_sum(uu_part);
    for (int64_t d = tid; d < D; d += stride) r_bar[d] = rho_bar * u[d] + w.u_bar[d] - u_bar_along_u * u[d];
  } else {  // no gradient through r, as in the reference
    for (int64_t d = tid; d < D; d += stride) r_bar[d] = T(0);
  }
  // r = ẑ - (ẑ.ŵ)ŵ and a = ẑ.ŵ, then ẑ = z / |z|.
  T rw_part = T(0);
  for (int64_t d = tid; d < D; d += stride) rw_part += r_bar[d] * w_unit[d];
  const T r_bar_along_w = block_sum(rw_part);
  T dot_part = T(0);
  for (int64_t d = tid; d < D; d += stride) {
    const T z_unit_bar = r_bar[d] + (a_bar - r_bar_along_w) * w_unit[d];
    dot_part += (z[d] / geo.z_norm) * z_unit_bar;
  }
  const T dot = block_sum(dot_part);
  for (int64_t d = tid; d < D; d += stride) {
    const T z_unit_bar = r_bar[d] + (a_bar - r_bar_along_w) * w_unit[d];
    grad_z[d] = (z_unit_bar - (z[d] / geo.z_norm) * dot) / geo.z_norm;
  }
}

template <typename T>
__global__ void expansion_forward_kernel(const T* z, const T* w, const T* noise, ExpansionSizes sizes,
                                         ScratchPlacement<T> placement, T* out) {
  SEE_DYNAMIC_SHARED(shared_raw);
  const int64_t src = blockIdx.x, n = sizes.n, D = sizes.D;
  const ExpansionBuffers<T> scratch =
      carve_scratch(sizes, src, reinterpret_cast<T*>(shared_raw), placement.large_global, placement.small_global);
  fill_simplex_columns(n, scratch.lower, scratch.diag);
  const SourceGeometry<T> geo =
      build_frame(z + src * D, w + src * D, noise + src * (n - 1) * D, n, D, scratch.frame, scratch.gs_coef,
                  scratch.pass_coef);
  emit_points(geo, scratch.frame, scratch.lower, scratch.diag, n, D, out + src * n * D);
}

template <typename T>
__global__ void expansion_backward_kernel(const T* grad, const T* z, const T* w, const T* noise,
                                          ExpansionSizes sizes, ScratchPlacement<T> placement, T* grad_z) {
  SEE_DYNAMIC_SHARED(shared_raw);
  const int64_t src = blockIdx.x, n = sizes.n, D = sizes.D;
  const ExpansionBuffers<T> scratch =
      carve_scratch(sizes, src, reinterpret_cast<T*>(shared_raw), placement.large_global, placement.small_global);
  fill_simplex_columns(n, scratch.lower, scratch.diag);
  const T* source_noise = noise + src * (n - 1) * D;
  const SourceGeometry<T> geo = build_frame(z + src * D, w + src * D, source_noise, n, D, scratch.frame,
                                            scratch.gs_coef, scratch.pass_coef);
  source_backward(geo, scratch, z + src * D, source_noise, grad + src * n * D, n, D, grad_z + src * D);
}

}  // namespace cuda
}  // namespace see
