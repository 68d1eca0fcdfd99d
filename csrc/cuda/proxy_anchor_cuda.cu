// CUDA kernel of the fused Proxy-Anchor loss with synthetic rows.
//
// The per-column math of the CPU kernels (proxy_anchor.h), laid out for the
// GPU: normalise the rows and the proxies, form S = [x̂; ẑ] P̂^T (N x C) with
// one matrix product, turn S in place into the shifted exponentials while
// reducing them per column in row chunks, and finish the columns. (The CPU
// instead forms S^T from the raw proxies and walks it proxy by proxy.) All of
// it stays on the device, loss included: no value is read back, so the call
// neither waits for the GPU nor breaks CUDA-graph capture.
//
// For the gradient, the per-column scales are applied to E in place after the
// finishing kernel, which makes it G = dL/dS (positives included). Then
// dL/d[x̂; ẑ] = G P̂ and dL/dP̂ = G^T [x̂; ẑ] are two matrix products, and no
// scatter of the positives onto their classes is needed.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"

#include <algorithm>
#include <limits>

#include "proxy_anchor_kernels.cuh"
#include "row_normalize.cuh"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

// Writes unit rows and norms of `in` into `out` and `norms`.
template <typename T>
void normalize_rows(const Tensor& in, Tensor& out, Tensor& norms, cudaStream_t stream) {
  const int64_t rows = in.size(0);
  if (rows == 0) return;
  const LaunchShape shape = row_norm_launch(rows);
  normalize_rows_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
      in.const_data_ptr<T>(), rows, in.size(1), out.data_ptr<T>(), norms.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Gradient w.r.t. the raw rows from the gradient w.r.t. their unit rows.
template <typename T>
Tensor normalize_backward(const Tensor& unit, const Tensor& norms, const Tensor& grad_unit, cudaStream_t stream) {
  Tensor grad = at::empty_like(unit);
  const int64_t rows = unit.size(0);
  if (rows == 0) return grad;
  const LaunchShape shape = row_norm_launch(rows);
  normalize_rows_backward_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
      unit.const_data_ptr<T>(), norms.const_data_ptr<T>(), grad_unit.const_data_ptr<T>(), rows, unit.size(1),
      grad.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor> fused_loss(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                                                      const Tensor& synthetic, const Tensor& synthetic_labels,
                                                      double alpha, double margin, double lam, bool compute_grad,
                                                      bool synthetic_grad) {
  const int64_t B = x.size(0), m = synthetic.size(0), C = proxies.size(0), D = x.size(1);
  const int64_t N = B + m;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto options = x.options();

  Tensor rows_unit = at::empty({N, D}, options);
  Tensor row_norms = at::empty({N}, options);
  Tensor real_unit = rows_unit.narrow(0, 0, B), synthetic_unit = rows_unit.narrow(0, B, m);
  Tensor real_norms = row_norms.narrow(0, 0, B), synthetic_norms = row_norms.narrow(0, B, m);
  normalize_rows<T>(x, real_unit, real_norms, stream);
  normalize_rows<T>(synthetic, synthetic_unit, synthetic_norms, stream);
  Tensor proxies_unit = at::empty_like(proxies);
  Tensor proxy_norms = at::empty({C}, options);
  normalize_rows<T>(proxies, proxies_unit, proxy_norms, stream);

  Tensor S = at::mm(rows_unit, proxies_unit.t());  // N x C, becomes E, then G, in place
  const RowParts parts{{0, B}, {B, m}, {labels.const_data_ptr<int64_t>(), synthetic_labels.const_data_ptr<int64_t>()}};
  const int chunks =
      column_chunks(C, std::max(B, m), at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const bool exact_refs = !fixed_ref_is_safe<T>(alpha);

  Tensor sums = at::empty({2, 2, chunks, C}, options);  // [neg | pos][part][chunk][column]
  Tensor counts = at::empty({2, chunks, C}, options.dtype(at::kInt));
  Tensor refs = exact_refs ? at::empty({2, 2, C}, options) : Tensor();  // [neg | pos][part][column]
  Tensor pos_exp = at::zeros({N}, options);
  Tensor scales = at::empty({2, 2, C}, options);  // [neg | pos][part][column]
  Tensor loss = at::empty({}, options);
  // Without proxies every label is out of range: known here, without reading them.
  Tensor label_error = at::full({1}, C == 0 && N > 0 ? 1 : 0, options.dtype(at::kInt));

  T* sum_data = sums.data_ptr<T>();
  const int64_t part_sums = 2 * static_cast<int64_t>(chunks) * C;
  ColumnPartials<T> partials{sum_data, sum_data + part_sums, counts.data_ptr<int>(), pos_exp.data_ptr<T>(),
                             nullptr, nullptr, label_error.data_ptr<int>()};
  if (C > 0 && N > 0) {
    const LaunchShape shape = column_pass_launch(C, chunks);
    Tensor extrema;
    const T* neg_max = nullptr;
    const T* pos_min = nullptr;
    if (exact_refs) {
      extrema = at::empty({2, 2, chunks, C}, options);
      T* extrema_data = extrema.data_ptr<T>();
      column_extrema_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(S.const_data_ptr<T>(), C, parts,
                                                                               extrema_data, extrema_data + part_sums);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      neg_max = extrema_data;
      pos_min = extrema_data + part_sums;
      partials.neg_ref = refs.data_ptr<T>();
      partials.pos_ref = partials.neg_ref + 2 * C;
    }
    exponentiate_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(S.data_ptr<T>(), C, parts,
                                                                           static_cast<T>(alpha), neg_max, pos_min,
                                                                           partials);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    sums.zero_();
    counts.zero_();
  }

  T* scale_data = scales.data_ptr<T>();
  const FinishArgs<T> finish{C, chunks, partials.neg_sum, partials.pos_sum, partials.pos_count, partials.neg_ref,
                             partials.pos_ref, label_error.const_data_ptr<int>(), alpha, margin, lam, scale_data,
                             scale_data + 2 * C, loss.data_ptr<T>()};
  const LaunchShape finish_shape = finish_launch();
  finish_columns_kernel<T><<<grid_of(finish_shape), block_of(finish_shape), 0, stream>>>(finish);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // Without gradients all three are 0-element; with them grad_synthetic is
  // 0-element unless asked for (the fake kernel in Python says the same).
  Tensor empty = at::empty({0}, options);
  Tensor grad_x = empty, grad_proxies = empty, grad_synthetic = empty;
  if (!compute_grad) return {loss, grad_x, grad_proxies, grad_synthetic};

  if (C > 0 && N > 0) {
    const LaunchShape shape = loss_gradient_launch(N, C);
    loss_gradient_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
        S.data_ptr<T>(), C, parts, pos_exp.const_data_ptr<T>(), scale_data, scale_data + 2 * C);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const bool want_synthetic = synthetic_grad && m > 0;
  Tensor rows_unit_grad = at::mm(S.narrow(0, 0, want_synthetic ? N : B), proxies_unit);
  Tensor proxies_unit_grad = at::mm(S.t(), rows_unit);
  grad_x = normalize_backward<T>(real_unit, real_norms, rows_unit_grad.narrow(0, 0, B), stream);
  grad_proxies = normalize_backward<T>(proxies_unit, proxy_norms, proxies_unit_grad, stream);
  if (want_synthetic) {
    grad_synthetic = normalize_backward<T>(synthetic_unit, synthetic_norms, rows_unit_grad.narrow(0, B, m), stream);
  } else if (synthetic_grad) {
    grad_synthetic = at::empty_like(synthetic);  // no rows: (0, D)
  }
  if (C == 0 && N > 0) {  // the flagged labels: NaN, as the kernels make it when C > 0
    grad_x.fill_(std::numeric_limits<T>::quiet_NaN());
    if (want_synthetic) grad_synthetic.fill_(std::numeric_limits<T>::quiet_NaN());
  }
  return {loss, grad_x, grad_proxies, grad_synthetic};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> proxy_anchor_fused_cuda(const Tensor& x, const Tensor& labels,
                                                                   const Tensor& proxies, const Tensor& synthetic,
                                                                   const Tensor& synthetic_labels, double alpha,
                                                                   double margin, double lam, bool compute_grad,
                                                                   bool synthetic_grad) {
  check_proxy_anchor_args(x, labels, proxies, synthetic, synthetic_labels);
  const c10::cuda::CUDAGuard guard(x.device());
  std::tuple<Tensor, Tensor, Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "proxy_anchor_fused_cuda", [&] {
    result = fused_loss<scalar_t>(x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, compute_grad,
                                  synthetic_grad);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("proxy_anchor_fused", &proxy_anchor_fused_cuda); }

}  // namespace cuda
}  // namespace see
