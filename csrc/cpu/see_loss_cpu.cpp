// CPU kernel of the whole SEE loss (docs/method.md §2-4) with detached synthetic points.
//
// One call does what the reference does in many: normalise the batch and the
// proxies, pick the rows to expand, build their synthetic points straight into
// the rows of the one matrix that the loss multiplies (each row's random draws
// made inside the per-row loop from a counter-based stream, so none are stored),
// then the shared loss on unit rows (chunk by chunk of classes) and the
// gradients w.r.t. x and the proxies.
// The synthetic points are detached: their normalisation has no backward.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../op_checks.h"
#include "expansion_scratch.h"
#include "hot_loops.h"
#include "proxy_anchor_aten.h"
#include "row_selection.h"
#include "unit_row_expansion.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

// Writes the synthetic points of the rows `expanded` (of the unit rows `rows`,
// B of them, about the unit axes `axis`, one per row) to rows B, B + n, ...; the
// j-th expanded row's draws are the given noise of that row or elements
// [j (n-1) D, (j+1) (n-1) D) of the stream `seed`.
template <typename T>
void expand_rows(T* rows, int64_t B, const T* axis, const std::vector<int64_t>& expanded, int64_t n, int64_t D,
                 const T* given, uint64_t seed) {
  at::parallel_for(0, static_cast<int64_t>(expanded.size()), 1, [&](int64_t begin, int64_t end) {
    const ExpansionScratch<T> scratch(n, D, false);
    const auto expand_unit_source = hot_loops<T>().expand_unit_source;
    for (int64_t j = begin; j < end; ++j) {
      const int64_t row = expanded[j];
      const DrawSource<T> draws{given != nullptr ? given + row * (n - 1) * D : nullptr, seed,
                                static_cast<uint64_t>(j * (n - 1) * D)};
      expand_unit_source(rows + row * D, axis + row * D, n, D, draws, scratch.buffers(), rows + (B + j * n) * D);
    }
  });
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> see_loss(const Tensor& x, const Tensor& labels,
                                                            const Tensor& proxies, const std::optional<Tensor>& noise,
                                                            const Tensor& seed, const SeeLossParams& p) {
  const int64_t B = x.size(0), C = proxies.size(0), D = x.size(1), n = p.n_expansion;
  const int64_t* y = labels.const_data_ptr<int64_t>();
  check_labels_in_range(y, B, C, "labels");

  Tensor proxy_norms = at::empty({C}, x.options());
  row_norms_into<T>(proxies, proxy_norms);
  check_finite_rows(proxies.const_data_ptr<T>(), proxy_norms.const_data_ptr<T>(), C, D, "proxies");
  // The unit proxy of each batch row's class (B x D, not C x D): the axis of its expansion.
  Tensor axes = at::empty({B, D}, x.options());
  {
    const T* p = proxies.const_data_ptr<T>();
    T* out = axes.data_ptr<T>();
    at::parallel_for(0, B, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) normalize_row(p + y[i] * D, out + i * D, D);
    });
  }
  const T* axis = axes.const_data_ptr<T>();

  // Room for the synthetic rows: k of them in fraction mode; in threshold mode
  // k is known only after the cosines, and pages of rows left unused are never touched.
  const int64_t most_expanded = p.num_selected.has_value() ? std::min(*p.num_selected, B) : B;
  Tensor rows_all = at::empty({B + most_expanded * n, D}, x.options());
  Tensor x_unit = rows_all.narrow(0, 0, B);
  Tensor x_norms = at::empty({B}, x.options());
  normalize_rows_into<T>(x, x_unit, x_norms);
  check_finite_rows(x.const_data_ptr<T>(), x_norms.const_data_ptr<T>(), B, D, "embeddings");
  T* rows = rows_all.data_ptr<T>();
  std::vector<T> positive_cosine(B);
  for (int64_t i = 0; i < B; ++i) positive_cosine[i] = dot(rows + i * D, axis + i * D, D);
  const std::vector<int64_t> expanded = select_rows(positive_cosine.data(), B, p.num_selected, p.threshold);
  const int64_t k = static_cast<int64_t>(expanded.size()), N = B + k * n;
  Tensor rows_unit = rows_all.narrow(0, 0, N);

  std::vector<int64_t> row_labels(y, y + B);
  for (const int64_t row : expanded) row_labels.insert(row_labels.end(), n, y[row]);
  const T* given = noise.has_value() ? noise->const_data_ptr<T>() : nullptr;
  expand_rows(rows, B, axis, expanded, n, D, given, static_cast<uint64_t>(seed.item<int64_t>()));

  UnitRowsLoss result = loss_on_unit_rows<T>(rows_unit, row_labels.data(), B, proxies, p.loss);
  Tensor grad_x = at::empty({0}, x.options()), grad_proxies = at::empty({0}, x.options());
  if (p.loss.compute_grad) {
    grad_x = normalize_backward<T>(x_unit, x_norms, result.grad_rows);
    grad_proxies = result.grad_proxies;
  }
  double cosine_sum = 0.0;
  for (int64_t i = 0; i < B; ++i) cosine_sum += positive_cosine[i];
  return {at::scalar_tensor(result.loss, x.options()), grad_x, grad_proxies,
          at::scalar_tensor(k, x.options().dtype(at::kLong)),
          at::scalar_tensor(B > 0 ? cosine_sum / B : 0.0, x.options()),
          at::zeros({}, x.options().dtype(at::kLong)),  // the values were checked above
          at::empty({0}, x.options()), at::empty({0}, x.options().dtype(at::kLong))};  // nothing left for the backward
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> see_loss_fused_cpu(
    const Tensor& x, const Tensor& labels, const Tensor& proxies, const std::optional<Tensor>& noise,
    const Tensor& seed, int64_t n_expansion, std::optional<int64_t> num_selected, double threshold, double lam,
    double alpha, double margin, bool compute_grad, std::optional<int64_t> chunk_bytes, c10::string_view products) {
  check_see_loss_args(x, labels, proxies, noise, seed, n_expansion);
  // products: the CPU's float32 products are float32's whatever the caller allows.
  const SeeLossParams params = see_loss_params(proxies.size(0), n_expansion, num_selected, threshold, lam, alpha,
                                               margin, compute_grad, chunk_bytes, std::string(products));
  std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "see_loss_fused_cpu", [&] {
    result = see_loss<scalar_t>(x, labels, proxies, noise, seed, params);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) { m.impl("see_loss_fused", &see_loss_fused_cpu); }

}  // namespace cpu
}  // namespace see
