// The ATen layer of the fused Proxy-Anchor loss on the CPU: the loss on unit
// rows, shared by the CPU ops, around the raw loops of proxy_anchor_kernels.h.
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

#include <limits>
#include <vector>

#include "hot_loops.h"
#include "proxy_anchor_kernels.h"
#include "row_normalize_aten.h"

namespace see {
namespace cpu {

// The loss and, when asked, its gradients w.r.t. the unit rows and proxies.
struct UnitRowsLoss {
  double loss = 0.0;
  at::Tensor grad_real, grad_proxies, grad_synthetic;  // undefined unless computed
};

// PA(rows [0, B)) + lam * PA(rows [B, N)) of unit rows (N x D) with labels
// `row_labels` (N, int64) against the proxies (C x D, raw) whose norms are
// `proxy_norms`. The gradients are w.r.t. the unit rows and the unit proxies.
// A label outside [0, C) makes the loss and every gradient NaN.
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
                         inverse_norm.data(), by_class.out_of_range > 0};
  std::vector<double> term_storage(4 * C);
  const ColumnTerms terms{{term_storage.data(), term_storage.data() + C},
                          {term_storage.data() + 2 * C, term_storage.data() + 3 * C}};
  at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
    hot_loops<T>().loss_proxy_rows(problem, begin, end, compute_grad, terms);
  });
  UnitRowsLoss result;
  result.loss = total_loss(problem, terms);
  if (compute_grad) {
    result.grad_proxies = at::mm(ST, rows_unit);
    const int64_t columns = synthetic_grad ? N : B;  // of G, scaled by 1/|p_c| for the products with P
    T* g = ST.data_ptr<T>();
    at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
      hot_loops<T>().scale_rows(g, inverse_norm.data(), N, columns, begin, end);
    });
    result.grad_real = at::mm(ST.narrow(1, 0, B).t(), proxies);
    if (synthetic_grad) result.grad_synthetic = at::mm(ST.narrow(1, B, N - B).t(), proxies);
    if (problem.labels_out_of_range) {  // the products spread G's NaN, except where C = 0 leaves them empty
      for (at::Tensor* grad : {&result.grad_real, &result.grad_proxies, &result.grad_synthetic})
        if (grad->defined()) grad->fill_(std::numeric_limits<double>::quiet_NaN());
    }
  }
  return result;
}

}  // namespace cpu
}  // namespace see
