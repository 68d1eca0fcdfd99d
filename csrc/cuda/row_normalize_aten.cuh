// The row normalisation kernels (row_normalize.cuh) on tensors, launched on
// `stream`: shared by the CUDA ops that normalise rows and proxies
// (proxy_anchor_cuda.cu, softmax_family_cuda.cu). The formulas: docs/method.md §1, §3.1.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>

#include <cstdint>

#include "row_normalize.cuh"

namespace see {
namespace cuda {

// Writes unit rows and norms of `in` into `out` and `norms`.
template <typename T>
void normalize_rows(const at::Tensor& in, const at::Tensor& out, const at::Tensor& norms, cudaStream_t stream) {
  const int64_t rows = in.size(0);
  if (rows == 0) return;
  const LaunchShape shape = row_norm_launch(rows);
  normalize_rows_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
      in.const_data_ptr<T>(), rows, in.size(1), out.data_ptr<T>(), norms.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Gradient w.r.t. the raw rows, into `grad`, from the gradient w.r.t. their unit rows.
template <typename T>
void normalize_backward_into(const at::Tensor& unit, const at::Tensor& norms, const at::Tensor& grad_unit,
                             const at::Tensor& grad, cudaStream_t stream) {
  const int64_t rows = unit.size(0);
  if (rows == 0) return;
  const LaunchShape shape = row_norm_launch(rows);
  normalize_rows_backward_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
      unit.const_data_ptr<T>(), norms.const_data_ptr<T>(), grad_unit.const_data_ptr<T>(), rows, unit.size(1),
      grad.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace see
