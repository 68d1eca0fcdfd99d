// CUDA kernel of the fused Proxy-Anchor loss with synthetic rows.
//
// The algorithm of cpu/proxy_anchor_cpu.cpp: normalise the rows, form
// S = [x̂; ẑ] P̂^T with one matrix product, turn S in place into the shifted
// exponentials while reducing them per column, and finish the columns. All of
// it stays on the device, loss included: no value is read back, so the call
// neither waits for the GPU nor breaks CUDA-graph capture.
//
// The gradient differs from the CPU's only in its last step: after the
// finishing kernel the per-column scales are applied to E in place, which
// makes it G = dL/dS (positives included). Then dL/d[x̂; ẑ] = G P̂ and
// dL/dP̂ = G^T [x̂; ẑ] are two matrix products, and the scatter of the
// positives onto their classes (atomics, or a host-side index_add) is not
// needed.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"

#include <algorithm>

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
  normalize_rows_kernel<T><<<row_norm_blocks(rows), kNormThreads, 0, stream>>>(
      in.const_data_ptr<T>(), rows, in.size(1), out.data_ptr<T>(), norms.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Gradient w.r.t. the raw rows from the gradient w.r.t. their unit rows.
template <typename T>
Tensor normalize_backward(const Tensor& unit, const Tensor& norms, const Tensor& grad_unit, cudaStream_t stream) {
  Tensor grad = at::empty_like(unit);
  const int64_t rows = unit.size(0);
  if (rows == 0) return grad;
  normalize_rows_backward_kernel<T><<<row_norm_blocks(rows), kNormThreads, 0, stream>>>(
      unit.const_data_ptr<T>(), norms.const_data_ptr<T>(), grad_unit.const_data_ptr<T>(), rows, unit.size(1),
      grad.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}

// Row chunks of the column passes: enough blocks to fill the device when C is
// small, at least 32 rows (4 per thread) per chunk.
int column_chunks(int64_t C, int64_t max_rows) {
  const int64_t tiles = ceil_div(C, kColumnTile);
  const int64_t target_blocks = 4 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const int64_t by_rows = std::max<int64_t>(1, ceil_div(max_rows, 4 * kRowLanes));
  return static_cast<int>(std::min<int64_t>({std::max<int64_t>(1, target_blocks / tiles), by_rows, 65535}));
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
  const int chunks = column_chunks(C, std::max(B, m));
  const bool exact_refs = !fixed_ref_is_safe<T>(alpha);

  Tensor sums = at::empty({2, 2, chunks, C}, options);  // [neg | pos][part][chunk][column]
  Tensor counts = at::empty({2, chunks, C}, options.dtype(at::kInt));
  Tensor refs = exact_refs ? at::empty({2, 2, C}, options) : Tensor();  // [neg | pos][part][column]
  Tensor pos_exp = at::zeros({N}, options);
  Tensor scales = at::empty({2, 2, C}, options);  // [neg | pos][part][column]
  Tensor loss = at::empty({}, options);

  T* sum_data = sums.data_ptr<T>();
  const int64_t part_sums = 2 * static_cast<int64_t>(chunks) * C;
  ColumnPartials<T> partials{sum_data, sum_data + part_sums, counts.data_ptr<int>(), pos_exp.data_ptr<T>(),
                             nullptr, nullptr};
  if (C > 0 && N > 0) {
    const dim3 grid(static_cast<unsigned>(ceil_div(C, kColumnTile)), chunks, 2);
    const dim3 block(kColumnTile, kRowLanes);
    Tensor extrema;
    const T* neg_max = nullptr;
    const T* pos_min = nullptr;
    if (exact_refs) {
      extrema = at::empty({2, 2, chunks, C}, options);
      T* extrema_data = extrema.data_ptr<T>();
      column_extrema_kernel<T><<<grid, block, 0, stream>>>(S.const_data_ptr<T>(), C, parts, extrema_data,
                                                           extrema_data + part_sums);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      neg_max = extrema_data;
      pos_min = extrema_data + part_sums;
      partials.neg_ref = refs.data_ptr<T>();
      partials.pos_ref = partials.neg_ref + 2 * C;
    }
    exponentiate_kernel<T><<<grid, block, 0, stream>>>(S.data_ptr<T>(), C, parts, static_cast<T>(alpha), neg_max,
                                                       pos_min, partials);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    sums.zero_();
    counts.zero_();
  }

  T* scale_data = scales.data_ptr<T>();
  const FinishArgs<T> finish{C, chunks, partials.neg_sum, partials.pos_sum, partials.pos_count, partials.neg_ref,
                             partials.pos_ref, alpha, margin, lam, scale_data, scale_data + 2 * C,
                             loss.data_ptr<T>()};
  finish_columns_kernel<T><<<1, kFinishThreads, 0, stream>>>(finish);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  Tensor empty = at::empty({0}, options);
  Tensor grad_x = empty, grad_proxies = empty, grad_synthetic = empty;
  if (!compute_grad) return {loss, grad_x, grad_proxies, grad_synthetic};

  if (C > 0) {
    const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, ceil_div(C, 32) * 32)));
    loss_gradient_kernel<T><<<N, threads, 0, stream>>>(S.data_ptr<T>(), C, parts, pos_exp.const_data_ptr<T>(),
                                                       scale_data, scale_data + 2 * C);
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
    grad_synthetic = at::empty_like(synthetic);
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
