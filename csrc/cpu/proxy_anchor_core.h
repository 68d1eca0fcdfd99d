// The fused Proxy-Anchor loss on unit rows, shared by the CPU ops.
//
// One similarity matrix, stored transposed, S^T = P̂ [x̂; ẑ]^T (C x N), is formed
// and, proxy by proxy, turned in place into (dL/dS)^T while the per-proxy sums
// are taken (proxy_anchor_kernels.h). The gradients w.r.t. the unit rows and
// unit proxies are then products with it: G_real P̂, G^T [x̂; ẑ] over all rows
// at once, and G_syn P̂ when asked. Peak extra memory: the one C x N matrix.
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

// Labels index per-proxy arrays: out-of-range values would write out of bounds.
// The message is the Python validation's (see_cuda/validation.py).
inline void check_labels_in_range(const int64_t* y, int64_t count, int64_t C, const char* name) {
  if (count == 0) return;
  const auto [lo, hi] = std::minmax_element(y, y + count);
  TORCH_CHECK_VALUE(*lo >= 0 && *hi < C, name, " must lie in [0, ", C, ") (the number of proxies), got values in [",
                    *lo, ", ", *hi, "]");
}

// Rows whose norm is not finite hold a NaN or an infinity, or overflow when
// squared; only the first is an error, worded as the Python validation's.
template <typename T>
void check_finite_rows(const T* rows, const T* norms, int64_t R, int64_t D, const char* name) {
  for (int64_t i = 0; i < R; ++i) {
    if (std::isfinite(norms[i])) continue;
    for (int64_t d = 0; d < D; ++d)
      TORCH_CHECK_VALUE(std::isfinite(rows[i * D + d]), name, " contains NaN or infinite values");
  }
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
// `row_labels` (N, int64, in range) against unit proxies (C x D).
template <typename T>
UnitRowsLoss loss_on_unit_rows(const at::Tensor& rows_unit, const int64_t* row_labels, int64_t B,
                               const at::Tensor& proxies_unit, double alpha, double margin, double lam,
                               bool compute_grad, bool synthetic_grad) {
  const int64_t N = rows_unit.size(0), C = proxies_unit.size(0);
  const RowsByClass by_class(row_labels, N, C);
  at::Tensor ST = at::mm(proxies_unit, rows_unit.t());  // C x N, becomes (dL/dS)^T in place
  LossProblem<T> problem{ST.data_ptr<T>(), C, B, N, by_class.begin.data(),
                         by_class.rows.data(), static_cast<T>(alpha), static_cast<T>(margin), {1.0, lam},
                         {by_class.classes_in(0, B, C), by_class.classes_in(B, N, C)}, !fixed_ref_is_safe<T>(alpha)};
  std::vector<double> term_storage(4 * C);
  const ColumnTerms terms{{term_storage.data(), term_storage.data() + C},
                          {term_storage.data() + 2 * C, term_storage.data() + 3 * C}};
  at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) loss_proxy_row(problem, c, compute_grad, terms);
  });
  UnitRowsLoss result;
  result.loss = total_loss(problem, terms);
  if (compute_grad) {
    result.grad_real = at::mm(ST.narrow(1, 0, B).t(), proxies_unit);
    result.grad_proxies = at::mm(ST, rows_unit);
    if (synthetic_grad) result.grad_synthetic = at::mm(ST.narrow(1, B, N - B).t(), proxies_unit);
  }
  return result;
}

}  // namespace cpu
}  // namespace see
