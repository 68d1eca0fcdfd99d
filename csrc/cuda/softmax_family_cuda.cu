// CUDA kernels of the softmax-family losses (docs/method.md §7): the CPU glue's
// two passes (cpu/softmax_family_cpu.cpp) laid out for the GPU. Per chunk of
// classes (at most chunk_bytes of cosines): normalise the chunk's class
// vectors (made contiguous: PML's W is D x C, never copied whole), form
// S_c = X̂ P̂_c^T with one matrix product, then one block per row merges the
// chunk into the row's running (max, sum) (softmax_rows_kernel), or turns
// the row's cosines into dL/dS in place (softmax_grad_kernel) for the products
// dL/dP̂_c = G_c^T X̂ and dL/dX̂ += G_c P̂_c. Chunks run in stream order; no
// value is read back.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "../op_checks.h"
#include "../proxy_anchor.h"
#include "row_normalize_aten.cuh"
#include "softmax_family_kernels.cuh"
#include "softmax_family_launch.h"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

// Calls f(first, count, unit chunk, norms, cosines N x count) per chunk of classes.
template <typename T, typename F>
void for_each_chunk(const Tensor& rows_unit, const Tensor& classes, int64_t chunk_bytes, cudaStream_t stream, F&& f) {
  const int64_t N = rows_unit.size(0), C = classes.size(0), D = classes.size(1);
  const int64_t width = std::min(C, classes_per_chunk(chunk_bytes, N, sizeof(T)));
  Tensor cosines = at::empty({N * width}, rows_unit.options());
  Tensor unit_buffer = at::empty({width, D}, rows_unit.options());
  Tensor norm_buffer = at::empty({width}, rows_unit.options());
  for (int64_t first = 0; first < C; first += width) {
    const int64_t count = std::min(width, C - first);
    const Tensor raw = classes.narrow(0, first, count).contiguous();
    Tensor unit = unit_buffer.narrow(0, 0, count), norms = norm_buffer.narrow(0, 0, count);
    normalize_rows<T>(raw, unit, norms, stream);
    Tensor S = cosines.narrow(0, 0, N * count).view({N, count});
    at::mm_out(S, rows_unit, unit.t());
    f(first, count, unit, norms, S);
  }
}

template <typename T>
Tensor rows_stats(const Tensor& x, const Tensor& labels, const Tensor& classes, const SoftmaxFamilyParams& p) {
  const int64_t N = x.size(0);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  Tensor rows_unit = at::empty_like(x), norms = at::empty({N}, x.options());
  normalize_rows<T>(x, rows_unit, norms, stream);
  Tensor stats = at::zeros({4, N}, x.options().dtype(at::kDouble));
  stats[0].fill_(-std::numeric_limits<double>::infinity());
  double* base = stats.data_ptr<double>();
  for_each_chunk<T>(rows_unit, classes, p.chunk_bytes, stream, [&](int64_t first, int64_t count, const Tensor&,
                                                                 const Tensor&, Tensor& S) {
    if (N == 0) return;
    const LaunchShape shape = softmax_rows_launch(N, count);
    softmax_rows_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
        S.data_ptr<T>(), count, p.class_offset + first, labels.const_data_ptr<int64_t>(), p.map, base, base + N,
        base + 2 * N, base + 3 * N);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return stats.t().contiguous();
}

template <typename T>
std::tuple<Tensor, Tensor> rows_grad(const Tensor& x, const Tensor& labels, const Tensor& classes, const Tensor& lse,
                                     const Tensor& weight, const SoftmaxFamilyParams& p) {
  const int64_t N = x.size(0);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  Tensor rows_unit = at::empty_like(x), norms = at::empty({N}, x.options());
  normalize_rows<T>(x, rows_unit, norms, stream);
  Tensor grad_unit = at::zeros_like(rows_unit);
  Tensor grad_classes = at::empty(classes.sizes(), x.options());
  const Tensor lse_c = lse.contiguous(), weight_c = weight.contiguous();
  for_each_chunk<T>(rows_unit, classes, p.chunk_bytes, stream, [&](int64_t first, int64_t count, const Tensor& unit,
                                                                 const Tensor& class_norms, Tensor& G) {
    if (N > 0) {
      const LaunchShape shape = softmax_rows_launch(N, count);
      softmax_grad_kernel<T><<<grid_of(shape), block_of(shape), 0, stream>>>(
          G.data_ptr<T>(), count, p.class_offset + first, labels.const_data_ptr<int64_t>(), p.map,
          lse_c.const_data_ptr<double>(), weight_c.const_data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    const Tensor grad_unit_classes = at::mm(G.t(), rows_unit);
    normalize_backward_into<T>(unit, class_norms, grad_unit_classes, grad_classes.narrow(0, first, count), stream);
    grad_unit.addmm_(G, unit);
  });
  Tensor grad_x = at::empty_like(x);
  normalize_backward_into<T>(rows_unit, norms, grad_unit, grad_x, stream);
  return {grad_x, grad_classes};
}

Tensor softmax_family_rows_cuda(const Tensor& x, const Tensor& labels, const Tensor& classes, double scale,
                                double bias, int64_t margin_kind, double margin, int64_t class_offset,
                                std::optional<int64_t> chunk_bytes) {
  check_softmax_family_args(x, labels, classes);
  const SoftmaxFamilyParams params = softmax_family_params(scale, bias, margin_kind, margin, class_offset, chunk_bytes);
  const c10::cuda::CUDAGuard guard(x.device());
  Tensor result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "softmax_family_rows_cuda", [&] {
    result = rows_stats<scalar_t>(x, labels, classes, params);
  });
  return result;
}

std::tuple<Tensor, Tensor> softmax_family_grad_cuda(const Tensor& x, const Tensor& labels, const Tensor& classes,
                                                    const Tensor& lse, const Tensor& weight, double scale,
                                                    double bias, int64_t margin_kind, double margin,
                                                    int64_t class_offset, std::optional<int64_t> chunk_bytes) {
  check_softmax_family_args(x, labels, classes);
  const SoftmaxFamilyParams params = softmax_family_params(scale, bias, margin_kind, margin, class_offset, chunk_bytes);
  check_row_doubles(x, lse, weight);
  const c10::cuda::CUDAGuard guard(x.device());
  std::tuple<Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "softmax_family_grad_cuda", [&] {
    result = rows_grad<scalar_t>(x, labels, classes, lse, weight, params);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) {
  m.impl("softmax_family_rows", &softmax_family_rows_cuda);
  m.impl("softmax_family_grad", &softmax_family_grad_cuda);
}

}  // namespace cuda
}  // namespace see
