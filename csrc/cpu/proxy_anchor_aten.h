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
#include "class_chunks.h"
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
  const int64_t width = chunk_width<T>(C, N, p.chunk_bytes);
  std::vector<double> term_storage(4 * width);
  const ColumnTerms terms{{term_storage.data(), term_storage.data() + width},
                          {term_storage.data() + 2 * width, term_storage.data() + 3 * width}};
  if (compute_grad) {
    result.grad_rows = at::zeros({grad_rows, D}, rows_unit.options());
    result.grad_proxies = at::empty_like(proxies);
  }
  LossSums sums;
  // S_c^T (classes x rows), then G_c in place.
  for_each_class_chunk<T>(rows_unit, proxies, width, CosineLayout::kClassesByRows, [&](ClassChunk& chunk) {
    problem.ST = chunk.cosines.data_ptr<T>();
    problem.positives_begin = by_class.begin.data() + chunk.first;
    at::parallel_for(0, chunk.count, kRowGrain, [&](int64_t begin, int64_t end) {
      hot_loops<T>().loss_proxy_rows(problem, begin, end, compute_grad, terms);
    });
    add_terms(problem, terms, chunk.count, sums);
    if (!compute_grad) return;
    at::Tensor grad_raw = result.grad_proxies.narrow(0, chunk.first, chunk.count);
    at::mm_out(grad_raw, chunk.cosines, rows_unit);  // dL/dP̂ of the chunk, made dL/dP in place
    normalize_backward_from_raw<T>(chunk.raw, chunk.norms, grad_raw);
    result.grad_rows.addmm_(chunk.cosines.narrow(1, 0, grad_rows).t(), chunk.unit);
  });
  result.loss = total_loss(problem, sums);
  return result;
}

}  // namespace cpu
}  // namespace see
