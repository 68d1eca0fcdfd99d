// The fused Proxy-Anchor loss on unit rows, shared by the CPU ops.
//
// One similarity matrix, stored transposed, S^T (C x N), is formed as P [x̂; ẑ]^T
// with the raw proxies, its row c scaled by 1/|p_c| as the loss pass reads it,
// so that no C x D matrix of unit proxies is stored. Proxy by proxy, S^T is
// turned in place into (dL/dS)^T while the per-proxy sums are taken
// (proxy_anchor_kernels.h). The gradients are then products with it:
// dL/dP̂ = G^T [x̂; ẑ] over all rows at once, and, once G's rows are scaled by
// 1/|p_c|, dL/dx̂ = G_real P̂ = (G diag(1/|p|))_real P, and the same for ẑ when
// asked. Peak extra memory: the one C x N matrix and the proxies' gradient.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../normalize.h"
#include "proxy_anchor_kernels.h"

namespace see {
namespace cpu {

constexpr int64_t kRowGrain = 16;

// Unit rows of `in` into `out`, their norms into `norms` (float rows of one dtype).
template <typename T>
void normalize_rows_into(const at::Tensor& in, at::Tensor& out, at::Tensor& norms) {
  const int64_t D = in.size(1);
  const T* src = in.const_data_ptr<T>();
  T* dst = out.data_ptr<T>();
  T* nrm = norms.data_ptr<T>();
  at::parallel_for(0, in.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) nrm[i] = normalize_row(src + i * D, dst + i * D, D);
  });
}

// The norms row_norm of the rows of `in`.
template <typename T>
void row_norms_into(const at::Tensor& in, at::Tensor& norms) {
  const int64_t D = in.size(1);
  const T* src = in.const_data_ptr<T>();
  T* nrm = norms.data_ptr<T>();
  at::parallel_for(0, in.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) nrm[i] = row_norm(src + i * D, D);
  });
}

// In place, the gradient w.r.t. raw rows from the one w.r.t. their unit rows
// (normalize_row_backward), with the unit rows made on the fly from the raw ones.
template <typename T>
void normalize_backward_from_raw(const at::Tensor& raw, const at::Tensor& norms, at::Tensor& grad) {
  const int64_t D = raw.size(1);
  const T* r = raw.const_data_ptr<T>();
  const T* n = norms.const_data_ptr<T>();
  T* g = grad.data_ptr<T>();
  at::parallel_for(0, raw.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T inverse = T(1) / n[i];
      const T* row = r + i * D;
      T* gi = g + i * D;
      T along = T(0);
      SEE_SIMD_SUM(along)
      for (int64_t d = 0; d < D; ++d) along += row[d] * inverse * gi[d];
      SEE_PRAGMA(omp simd)
      for (int64_t d = 0; d < D; ++d) gi[d] = (gi[d] - row[d] * inverse * along) / n[i];
    }
  });
}

// Gradient w.r.t. the rows before normalisation, from the one w.r.t. the unit rows.
template <typename T>
at::Tensor normalize_backward(const at::Tensor& unit, const at::Tensor& norms, const at::Tensor& grad_unit) {
  at::Tensor grad = at::empty_like(unit);
  const int64_t D = unit.size(1);
  const T* u = unit.const_data_ptr<T>();
  const T* n = norms.const_data_ptr<T>();
  const T* g = grad_unit.const_data_ptr<T>();
  T* out = grad.data_ptr<T>();
  at::parallel_for(0, unit.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) normalize_row_backward(u + i * D, n[i], g + i * D, out + i * D, D);
  });
  return grad;
}

// The rows of each class, grouped by label and ascending within a class
// (a counting sort): offsets (C + 1) and row indices (N).
struct RowsByClass {
  std::vector<int64_t> begin, rows;
  RowsByClass(const int64_t* labels, int64_t N, int64_t C) : begin(C + 1, 0), rows(N) {
    for (int64_t i = 0; i < N; ++i) ++begin[labels[i] + 1];
    for (int64_t c = 0; c < C; ++c) begin[c + 1] += begin[c];
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t i = 0; i < N; ++i) rows[next[labels[i]]++] = i;
  }
  // Classes with a row in [r0, r1).
  int64_t classes_in(int64_t r0, int64_t r1, int64_t C) const {
    int64_t count = 0;
    for (int64_t c = 0; c < C; ++c) {
      const auto first = std::lower_bound(rows.begin() + begin[c], rows.begin() + begin[c + 1], r0);
      count += first != rows.begin() + begin[c + 1] && *first < r1;
    }
    return count;
  }
};

// The loss and, when asked, its gradients w.r.t. the unit rows and proxies.
struct UnitRowsLoss {
  double loss = 0.0;
  at::Tensor grad_real, grad_proxies, grad_synthetic;  // undefined unless computed
};

// PA(rows [0, B)) + lam * PA(rows [B, N)) of unit rows (N x D) with labels
// `row_labels` (N, int64, in range) against the proxies (C x D, raw) whose
// norms are `proxy_norms`. The gradients are w.r.t. the unit rows and the unit
// proxies.
template <typename T>
UnitRowsLoss loss_on_unit_rows(const at::Tensor& rows_unit, const int64_t* row_labels, int64_t B,
                               const at::Tensor& proxies, const at::Tensor& proxy_norms, double alpha, double margin,
                               double lam, bool compute_grad, bool synthetic_grad) {
  const int64_t N = rows_unit.size(0), C = proxies.size(0);
  const RowsByClass by_class(row_labels, N, C);
  std::vector<T> inverse_norm(C);
  for (int64_t c = 0; c < C; ++c) inverse_norm[c] = T(1) / proxy_norms.const_data_ptr<T>()[c];
  at::Tensor ST = at::mm(proxies, rows_unit.t());  // C x N, becomes (dL/dS)^T in place
  LossProblem<T> problem{ST.data_ptr<T>(), C, B, N, by_class.begin.data(),
                         by_class.rows.data(), static_cast<T>(alpha), static_cast<T>(margin), {1.0, lam},
                         {by_class.classes_in(0, B, C), by_class.classes_in(B, N, C)}, !fixed_ref_is_safe<T>(alpha),
                         inverse_norm.data()};
  std::vector<double> term_storage(4 * C);
  const ColumnTerms terms{{term_storage.data(), term_storage.data() + C},
                          {term_storage.data() + 2 * C, term_storage.data() + 3 * C}};
  at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) loss_proxy_row(problem, c, compute_grad, terms);
  });
  UnitRowsLoss result;
  result.loss = total_loss(problem, terms);
  if (compute_grad) {
    result.grad_proxies = at::mm(ST, rows_unit);
    const int64_t columns = synthetic_grad ? N : B;  // of G, scaled by 1/|p_c| for the products with P
    T* g = ST.data_ptr<T>();
    at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        SEE_PRAGMA(omp simd)
        for (int64_t i = 0; i < columns; ++i) g[c * N + i] *= inverse_norm[c];
      }
    });
    result.grad_real = at::mm(ST.narrow(1, 0, B).t(), proxies);
    if (synthetic_grad) result.grad_synthetic = at::mm(ST.narrow(1, B, N - B).t(), proxies);
  }
  return result;
}

}  // namespace cpu
}  // namespace see
