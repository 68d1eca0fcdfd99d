// The ATen layer of the fused Proxy-Anchor loss on the CPU: the loss on unit
// rows, shared by the CPU ops, around the raw loops of proxy_anchor_kernels.h.
//
// The proxies are taken in chunks of classes (proxy_anchor.h), in one pass:
// per chunk, its unit proxies P̂_c (chunk x D), the cosines S_c^T = P̂_c X̂^T
// (chunk x N, X̂ = [x̂; ẑ] the unit rows), turned in place into (dL/dS_c)^T = G_c
// while the per-proxy sums are taken, then dL/dP̂_c = G_c X̂ (and from it the
// gradient w.r.t. the raw proxies of the chunk) and dL/dX̂ += G_c^T P̂_c. Peak
// extra memory: one chunk of cosines and of unit proxies, dL/dX̂, and the
// proxies' gradient. Chunking changes only the order of the sums of dL/dX̂; the
// loss's terms are added in proxy order whatever the chunks.
// The formulas: docs/method.md §1, §4.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "../loss_params.h"
#include "hot_loops.h"
#include "proxy_anchor_kernels.h"
#include "row_normalize_aten.h"

namespace see {
namespace cpu {

// The loss and, when asked, its gradients.
struct UnitRowsLoss {
  double loss = 0.0;
  at::Tensor grad_rows;     // w.r.t. the unit rows: N x D, or B x D without the synthetic rows' gradient
  at::Tensor grad_proxies;  // w.r.t. the raw proxies, C x D
};

// The share of the proxies (C x D, raw; the classes p.shard) in
// PA(rows [0, B)) + lam * PA(rows [B, N)) of unit rows (N x D) with global
// labels `row_labels` (N, int64), in chunks of at most p.chunk_bytes of
// similarities. A label outside [0, p.shard.total) makes the loss and every
// gradient NaN.
template <typename T>
UnitRowsLoss loss_on_unit_rows(const at::Tensor& rows_unit, const int64_t* row_labels, int64_t B,
                               const at::Tensor& proxies, const ProxyAnchorParams& p) {
  const int64_t N = rows_unit.size(0), C = proxies.size(0), D = proxies.size(1);
  const ClassShard& shard = p.shard;
  const bool compute_grad = p.compute_grad;
  const int64_t grad_rows = p.synthetic_grad ? N : B;
  UnitRowsLoss result;
  const RowsByClass by_class(row_labels, N, shard.offset, C, shard.total);
  if (by_class.out_of_range > 0) {  // a row of no class: the loss is undefined, and says so
    const double nan = std::numeric_limits<double>::quiet_NaN();
    result.loss = nan;
    if (compute_grad) {
      result.grad_rows = at::full({grad_rows, D}, nan, rows_unit.options());
      result.grad_proxies = at::full_like(proxies, nan);
    }
    return result;
  }
  LossProblem<T> problem{nullptr,
                         B,
                         N,
                         nullptr,
                         by_class.rows.data(),
                         static_cast<T>(p.settings.alpha),
                         static_cast<T>(p.settings.margin),
                         {1.0, p.lam},
                         {classes_present(row_labels, 0, B, shard.total),
                          classes_present(row_labels, B, N, shard.total)},
                         shard.total,
                         !fixed_ref_is_safe<T>(p.settings.alpha)};
  const int64_t width = std::min(C, classes_per_chunk(p.chunk_bytes, N, sizeof(T)));
  at::Tensor cosines = at::empty({width, N}, rows_unit.options());  // S_c^T, then G_c
  at::Tensor unit_proxies = at::empty({width, D}, rows_unit.options());
  at::Tensor proxy_norms = at::empty({width}, rows_unit.options());
  std::vector<double> term_storage(4 * width);
  const ColumnTerms terms{{term_storage.data(), term_storage.data() + width},
                          {term_storage.data() + 2 * width, term_storage.data() + 3 * width}};
  if (compute_grad) {
    result.grad_rows = at::zeros({grad_rows, D}, rows_unit.options());
    result.grad_proxies = at::empty_like(proxies);
  }
  LossSums sums;
  for (int64_t first = 0; first < C; first += width) {
    const int64_t count = std::min(width, C - first);
    const at::Tensor raw = proxies.narrow(0, first, count);
    at::Tensor unit = unit_proxies.narrow(0, 0, count), norms = proxy_norms.narrow(0, 0, count);
    at::Tensor chunk = cosines.narrow(0, 0, count);
    normalize_rows_into<T>(raw, unit, norms);
    at::mm_out(chunk, unit, rows_unit.t());
    problem.ST = chunk.data_ptr<T>();
    problem.positives_begin = by_class.begin.data() + first;
    at::parallel_for(0, count, kRowGrain, [&](int64_t begin, int64_t end) {
      hot_loops<T>().loss_proxy_rows(problem, begin, end, compute_grad, terms);
    });
    add_terms(problem, terms, count, sums);
    if (!compute_grad) continue;
    at::Tensor grad_raw = result.grad_proxies.narrow(0, first, count);
    at::mm_out(grad_raw, chunk, rows_unit);  // dL/dP̂ of the chunk, made dL/dP in place
    normalize_backward_from_raw<T>(raw, norms, grad_raw);
    result.grad_rows.addmm_(chunk.narrow(1, 0, grad_rows).t(), unit);
  }
  result.loss = total_loss(problem, sums);
  return result;
}

}  // namespace cpu
}  // namespace see
