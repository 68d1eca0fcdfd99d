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

SEE_ISA_BEGIN

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
