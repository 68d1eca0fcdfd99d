// Max-Mahalanobis (regular simplex) centers in closed form (docs/method.md §3.3).
//
// Pang et al.'s recursion fills a lower-triangular matrix whose rows are L unit
// vectors with pairwise inner product -1/n, n = L - 1. By symmetry every row
// below row j has the same entry l_j in column j, and the recursion reduces to
//   d_j^2 = 1 - S_j,  l_j d_j = -1/n - S_j,  S_j = sum_{m<j} l_m^2,
// whose solution (checked by induction: S_j = j / (n (n - j + 1))) is
//   d_j = sqrt((n+1)(n-j) / (n (n-j+1))),  l_j = -sqrt((n+1) / (n (n-j) (n-j+1))).
// Each entry is then independent of the others: no sequential recursion.
#pragma once

#include <cmath>

#include "see_common.h"

namespace see {

SEE_ISA_BEGIN

// Entry (i, j) of the unit-radius centers of `num_centers` points.
SEE_HD double mmd_center_entry(int64_t i, int64_t j, int64_t num_centers) {
  if (num_centers == 1) return (i == 0 && j == 0) ? 1.0 : 0.0;
  const double n = static_cast<double>(num_centers - 1);
  const double jd = static_cast<double>(j);
  if (j > i || j >= num_centers - 1) return 0.0;  // upper triangle; the last column is unused
  if (j == i) return sqrt((n + 1.0) * (n - jd) / (n * (n - jd + 1.0)));
  return -sqrt((n + 1.0) / (n * (n - jd) * (n - jd + 1.0)));
}

SEE_ISA_END
}  // namespace see
