// Shared pieces of the SEE expansion (docs/method.md §3).
//
// Frame of one source: f[0] = ŵ (the proxy axis), f[1] = u (the unit residual of
// ẑ off ŵ), f[2 + j] = v_j, the j-th noise vector orthonormalised against all
// earlier frame vectors by Gram-Schmidt (reorthogonalised where it cancels). Synthetic point k (k = 1..n):
//   z_k = a ŵ + rho * sum_{j<n} Bw[k][j] f[1 + j],
// with a = ẑ.ŵ, rho = |ẑ - a ŵ| and Bw the unit MMD centers of n + 1 points.
#pragma once

#include <cmath>

#include "mmd_centers.h"
#include "see_common.h"

namespace see {

// Geometry of one source, as build_frame makes it on the CPU and on CUDA: a = ẑ·ŵ and
// rho = |ẑ - a ŵ| (§3.1), and whether the source is on its proxy's axis or a draw lies in
// the span of the frame before it.
template <typename T>
struct SourceGeometry {
  T a, rho, z_norm;
  bool degenerate;    // rho == 0: the source is on its proxy's axis (§3.6)
  bool draw_in_span;  // a draw lies in the span of the frame before it (§3.2): the points are NaN
};

SEE_ISA_BEGIN

// Unit roundoff η of T: 2^-24 for float, 2^-53 for double.
template <typename T>
SEE_HD T unit_roundoff() {
  return sizeof(T) == 4 ? T(0x1p-24) : T(0x1p-53);
}

// docs/method.md §3.6: the source is on its proxy's axis when |r_⊥|² is at
// most this times |ẑ|² (|r_⊥| <= 8η|ẑ|: twice what rounding leaves of r_⊥ then).
template <typename T>
SEE_HD T on_axis_rounding_sq() {
  const T tau = T(8) * unit_roundoff<T>();
  return tau * tau;
}

// docs/method.md §3.2: a draw orthogonalised against m frame vectors lies in
// their span when its residual's squared norm is at most this times its own
// (|v| <= (m + 1)(1 + sqrt(m)) η |g|, what rounding leaves of a draw in the span).
template <typename T>
SEE_HD T span_rounding_sq(int64_t m) {
  const double tau = double(m + 1) * (1.0 + sqrt(double(m))) * double(unit_roundoff<T>());
  return T(tau * tau);
}

// Coefficient of frame vector f[1 + j] in synthetic point k (0-based: point k + 1).
template <typename T>
SEE_HD T simplex_coefficient(int64_t k, int64_t j, int64_t n) {
  return static_cast<T>(mmd_center_entry(k + 1, j, n + 1));
}

// Index of the coordinate where |w| is smallest (the first on ties): the basis
// vector there is the best-conditioned fallback direction orthogonal to w.
template <typename T>
SEE_HD int64_t least_aligned_axis(const T* w, int64_t D) {
  int64_t best = 0;
  T best_abs = fabs(w[0]);
  for (int64_t d = 1; d < D; ++d) {
    const T v = fabs(w[d]);
    if (v < best_abs) {
      best_abs = v;
      best = d;
    }
  }
  return best;
}

SEE_ISA_END
}  // namespace see
