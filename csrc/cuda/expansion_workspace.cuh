// What one source's scratch of the SEE expansion kernels holds, and where (docs/method.md §3).
//
// Each thread block expands one source and needs two kinds of scratch:
//   large, O(n D): the frame ((n + 1) x D), and for the backward the sums
//     h_j = sum_k Bw[k][j] grad_k (n x D) and the gradient w.r.t. u (D);
//   small, O(n^2): the Gram-Schmidt coefficients ((n - 1) x (n + 1), and one
//     pass's n + 1), the simplex coefficients, and for the backward the lower triangle of
//     M = -H^T V and the vectors of the two triangular solves.
// Both live in shared memory when they fit the device's per-block budget;
// otherwise the large part, and if need be the small part too, moves to a
// global buffer with one slice per source (slower, equally correct);
// expansion_launch.h decides which.
#pragma once

#include <cstdint>

#include "expansion_launch.h"

namespace see {
namespace cuda {

// Pointers into one source's scratch; see ExpansionSizes for the sizes.
template <typename T>
struct ExpansionBuffers {
  T* frame;      // (n + 1) x D: ŵ, u, v_1 .. v_{n-1}
  T* gs_coef;    // (n - 1) x (n + 1), the layout of cpu/expansion_kernels.h
  T* pass_coef;  // n + 1: one Gram-Schmidt pass's coefficients
  T* lower;      // n: the entry of column j below the diagonal of the simplex rows
  T* diag;       // n + 1: the diagonal entry of column j (diag[0] unused)
  // backward only
  T* h;          // n x D
  T* u_bar;      // D
  T* neg_HtV;    // m (m + 1) / 2: -H_i . V_l for l <= i, row-major triangle
  T* t;          // m: R22^{-T} (noise . u)
  T* ct;         // m: copyltu(M) t
  T* q;          // m: H^T u
  T* s;          // m: R22^{-1} q
};

// Carves the scratch of source `source`: from `shared` where the global
// pointer of that part is null, from the global buffer's slice otherwise.
template <typename T>
__device__ ExpansionBuffers<T> carve_scratch(const ExpansionSizes& sizes, int64_t source, T* shared, T* large_global,
                                          T* small_global) {
  const int64_t n = sizes.n, D = sizes.D, m = sizes.m();
  T* small = small_global ? small_global + source * sizes.small_elems() : shared;
  T* large = large_global ? large_global + source * sizes.large_elems()
                          : shared + (small_global ? 0 : sizes.small_elems());
  ExpansionBuffers<T> s{};
  s.gs_coef = small;
  s.pass_coef = s.gs_coef + m * (n + 1);
  s.lower = s.pass_coef + (n + 1);
  s.diag = s.lower + n;
  s.frame = large;
  if (sizes.backward) {
    s.neg_HtV = s.diag + (n + 1);
    s.t = s.neg_HtV + m * (m + 1) / 2;
    s.ct = s.t + m;
    s.q = s.ct + m;
    s.s = s.q + m;
    s.h = s.frame + (n + 1) * D;
    s.u_bar = s.h + n * D;
  }
  return s;
}

}  // namespace cuda
}  // namespace see
