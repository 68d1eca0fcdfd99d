// CUDA kernel of the fused Proxy-Anchor loss with synthetic rows (docs/method.md §1, §4).
//
// The per-column math of the CPU kernels (proxy_anchor.h), laid out for the
// GPU. Normalise the rows; count the classes among each part's labels (|P+|,
// and the label check) before any similarity is formed; then, chunk by chunk
// of classes (at most chunk_bytes of similarities): normalise the chunk's
// proxies, form S_c = [x̂; ẑ] P̂_c^T (N x C_c) with one matrix product, turn
// S_c in place into the shifted exponentials while reducing them per column
// in row chunks, and finish the columns, adding the chunk's share of the loss
// to a running sum. (The CPU instead forms S_c^T and walks it proxy by proxy.)
// All of it stays on the device, loss included: no value is read back, so the
// call neither waits for the GPU nor breaks CUDA-graph capture.
//
// For the gradient, the per-column scales are applied to E in place after the
// finishing kernel, which makes it G_c = dL/dS_c (positives included). Then
// dL/dP̂_c = G_c^T [x̂; ẑ] and dL/d[x̂; ẑ] += G_c P̂_c are two matrix products,
// and no scatter of the positives onto their classes is needed. No C x D
// matrix of unit proxies is stored: only the chunk's.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"

#include <algorithm>
#include <limits>

#include "proxy_anchor_kernels.cuh"
#include "row_normalize_aten.cuh"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

template <typename T>
Tensor normalize_backward(const Tensor& unit, const Tensor& norms, const Tensor& grad_unit, cudaStream_t stream) {
  Tensor grad = at::empty_like(unit);
  normalize_backward_into<T>(unit, norms, grad_unit, grad, stream);
  return grad;
}

// The column passes of one chunk of classes (S: N x C, the chunk's cosines,
// which become G = dL/dS with compute_grad), adding its share to loss_sum.
template <typename T>
void chunk_passes(Tensor& S, int64_t first_class, const RowParts& parts, const ProxyAnchorParams& p,
                  const Tensor& num_positive_classes, const Tensor& label_error, Tensor& pos_exp, Tensor& loss_sum,
                  cudaStream_t stream) {
  const int64_t N = S.size(0), C = S.size(1);
  const auto options = S.options();
  const int chunks = column_chunks(C, std::max(parts.rows[0], parts.rows[1]),
                                   at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const bool exact_refs = !fixed_ref_is_safe<T>(p.settings.alpha);
  const int64_t part_sums = 2 * static_cast<int64_t>(chunks) * C;
  Tensor sums = at::empty({2, part_sums}, options);  // [neg | pos][part][row chunk][column]
  Tensor refs = exact_refs ? at::empty({2, 2, C}, options) : Tensor();  // [neg | pos][part][column]
  Tensor extrema = exact_refs ? at::empty({2, part_sums}, options) : Tensor();
  Tensor scales = at::empty({2, 2, C}, options);  // [neg | pos][part][column]
  T* sum_data = sums.data_ptr<T>();
  ColumnPartials<T> partials{sum_data, sum_data + part_sums, pos_exp.data_ptr<T>(), nullptr, nullptr};
  const LaunchShape shape = column_pass_launch(C, chunks);
  const T* neg_max = nullptr;
  const T* pos_min = nullptr;
  if (exact_refs) {
    T* extrema_data = extrema.data_ptr<T>();
    column_extrema_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
        S.const_data_ptr<T>(), C, first_class, parts, extrema_data, extrema_data + part_sums);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    neg_max = extrema_data;
    pos_min = extrema_data + part_sums;
    partials.neg_ref = refs.data_ptr<T>();
    partials.pos_ref = partials.neg_ref + 2 * C;
  }
  exponentiate_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
      S.data_ptr<T>(), C, first_class, parts, static_cast<T>(p.settings.alpha), neg_max, pos_min, partials);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  T* scale_data = scales.data_ptr<T>();
  const FinishArgs<T> finish{C, chunks, partials.neg_sum, partials.pos_sum, partials.neg_ref, partials.pos_ref,
                             label_error.const_data_ptr<int>(),
                             // int64_t is long here: data_ptr<long long> has no instance in libtorch.
                             reinterpret_cast<const long long*>(num_positive_classes.const_data_ptr<int64_t>()),
                             p.shard.total, p.settings.alpha, p.settings.margin, p.lam, scale_data,
                             scale_data + 2 * C, loss_sum.data_ptr<double>()};
  const LaunchShape finish_shape = finish_launch();
  finish_columns_kernel<T><<<grid_of(finish_shape), block_of(finish_shape), 0, stream>>>(finish);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (!p.compute_grad) return;
  const LaunchShape gradient_shape = loss_gradient_launch(N, C);
  loss_gradient_kernel<T><<<grid_of(gradient_shape), block_of(gradient_shape), 0, stream>>>(
      S.data_ptr<T>(), C, first_class, parts, pos_exp.const_data_ptr<T>(), scale_data, scale_data + 2 * C);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor> fused_loss(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                                                      const Tensor& synthetic, const Tensor& synthetic_labels,
                                                      const ProxyAnchorParams& p) {
  const int64_t B = x.size(0), m = synthetic.size(0), C = proxies.size(0), D = x.size(1);
  const bool compute_grad = p.compute_grad, synthetic_grad = p.synthetic_grad;
  const int64_t N = B + m;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto options = x.options();

  Tensor rows_unit = at::empty({N, D}, options);
  Tensor row_norms = at::empty({N}, options);
  Tensor real_unit = rows_unit.narrow(0, 0, B), synthetic_unit = rows_unit.narrow(0, B, m);
  Tensor real_norms = row_norms.narrow(0, 0, B), synthetic_norms = row_norms.narrow(0, B, m);
  normalize_rows<T>(x, real_unit, real_norms, stream);
  normalize_rows<T>(synthetic, synthetic_unit, synthetic_norms, stream);

  // |P+| of each part and the label check, before any column: every weight is then known.
  const Tensor sorted_labels = std::get<0>(labels.sort()), sorted_synthetic_labels = std::get<0>(synthetic_labels.sort());
  Tensor num_positive_classes = at::empty({2}, options.dtype(at::kLong));
  Tensor label_error = at::zeros({1}, options.dtype(at::kInt));
  const RowParts sorted{{0, B}, {B, m}, {sorted_labels.const_data_ptr<int64_t>(),
                                         sorted_synthetic_labels.const_data_ptr<int64_t>()}};
  const LaunchShape count_shape = count_classes_launch();
  count_classes_kernel<<<grid_of(count_shape), block_of(count_shape), 0, stream>>>(
      sorted, p.shard.total, reinterpret_cast<long long*>(num_positive_classes.data_ptr<int64_t>()),
      label_error.data_ptr<int>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const RowParts parts{{0, B}, {B, m}, {labels.const_data_ptr<int64_t>(), synthetic_labels.const_data_ptr<int64_t>()}};
  const int64_t width = std::min(C, classes_per_chunk(p.chunk_bytes, N, sizeof(T)));
  Tensor cosines = at::empty({N * width}, options);  // S_c, then G_c
  Tensor unit_proxies = at::empty({width, D}, options), proxy_norms = at::empty({width}, options);
  Tensor pos_exp = at::zeros({N}, options);
  Tensor loss_sum = at::zeros({1}, options.dtype(at::kDouble));
  const bool want_synthetic = synthetic_grad && m > 0;
  const int64_t grad_rows = want_synthetic ? N : B;
  Tensor rows_unit_grad, proxies_unit_grad, grad_proxies;
  if (compute_grad) {
    rows_unit_grad = at::zeros({grad_rows, D}, options);
    proxies_unit_grad = at::empty({width, D}, options);
    grad_proxies = at::empty_like(proxies);
  }
  for (int64_t first = 0; first < C; first += width) {
    const int64_t count = std::min(width, C - first);
    const Tensor raw = proxies.narrow(0, first, count);
    Tensor unit = unit_proxies.narrow(0, 0, count), norms = proxy_norms.narrow(0, 0, count);
    Tensor S = cosines.narrow(0, 0, N * count).view({N, count});
    normalize_rows<T>(raw, unit, norms, stream);
    at::mm_out(S, rows_unit, unit.t());
    if (N > 0)
      chunk_passes<T>(S, p.shard.offset + first, parts, p, num_positive_classes, label_error, pos_exp, loss_sum,
                      stream);
    if (!compute_grad) continue;
    Tensor unit_grad = proxies_unit_grad.narrow(0, 0, count);
    at::mm_out(unit_grad, S.t(), rows_unit);
    Tensor grad = grad_proxies.narrow(0, first, count);
    normalize_backward_into<T>(unit, norms, unit_grad, grad, stream);
    rows_unit_grad.addmm_(S.narrow(0, 0, grad_rows), unit);
  }
  Tensor loss = at::empty({}, options);
  const LaunchShape loss_shape = write_loss_launch();
  write_loss_kernel<T><<<grid_of(loss_shape), block_of(loss_shape), 0, stream>>>(
      loss_sum.const_data_ptr<double>(), label_error.const_data_ptr<int>(), loss.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // Without gradients all three are 0-element; with them grad_synthetic is
  // 0-element unless asked for (the fake kernel in Python says the same).
  // Each output is a tensor of its own: outputs must not alias.
  Tensor grad_x = at::empty({0}, options), grad_synthetic = at::empty({0}, options);
  if (!compute_grad) return {loss, grad_x, at::empty({0}, options), grad_synthetic};

  if (C == 0) {  // no chunk made G NaN after a flagged label: do it here, on the device
    rows_unit_grad = at::where(label_error.to(at::kBool), std::numeric_limits<T>::quiet_NaN(), rows_unit_grad);
  }
  grad_x = normalize_backward<T>(real_unit, real_norms, rows_unit_grad.narrow(0, 0, B), stream);
  if (want_synthetic) {
    grad_synthetic = normalize_backward<T>(synthetic_unit, synthetic_norms, rows_unit_grad.narrow(0, B, m), stream);
  } else if (synthetic_grad) {
    grad_synthetic = at::empty_like(synthetic);  // no rows: (0, D)
  }
  return {loss, grad_x, grad_proxies, grad_synthetic};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> proxy_anchor_fused_cuda(
    const Tensor& x, const Tensor& labels, const Tensor& proxies, const Tensor& synthetic,
    const Tensor& synthetic_labels, double alpha, double margin, double lam, bool compute_grad, bool synthetic_grad,
    int64_t class_offset, std::optional<int64_t> total_classes, std::optional<int64_t> chunk_bytes) {
  check_proxy_anchor_args(x, labels, proxies, synthetic, synthetic_labels);
  const ProxyAnchorParams params = proxy_anchor_params(proxies.size(0), alpha, margin, lam, compute_grad,
                                                       synthetic_grad, class_offset, total_classes, chunk_bytes);
  const c10::cuda::CUDAGuard guard(x.device());
  std::tuple<Tensor, Tensor, Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "proxy_anchor_fused_cuda", [&] {
    result = fused_loss<scalar_t>(x, labels, proxies, synthetic, synthetic_labels, params);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("proxy_anchor_fused", &proxy_anchor_fused_cuda); }

}  // namespace cuda
}  // namespace see
