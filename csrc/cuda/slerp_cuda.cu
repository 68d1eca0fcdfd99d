// CUDA glue of batched slerp: the kernels are in slerp_kernels.cuh (docs/method.md §6).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "slerp_kernels.cuh"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

Tensor slerp_cuda(const Tensor& a, const Tensor& b, const Tensor& t) {
  check_slerp_args(a, b, t);
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t R = a.size(0), D = a.size(1);
  Tensor out = at::empty_like(a);
  if (R == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "slerp_cuda", [&] {
    const LaunchShape shape = slerp_launch(R);
    slerp_kernel<scalar_t><<<grid_of(shape), block_of(shape), 0, at::cuda::getCurrentCUDAStream()>>>(
        a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), t.const_data_ptr<scalar_t>(), R, D,
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> slerp_backward_cuda(const Tensor& grad, const Tensor& a, const Tensor& b,
                                                       const Tensor& t) {
  check_slerp_args(a, b, t);
  check_slerp_grad(grad, a);
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t R = a.size(0), D = a.size(1);
  Tensor grad_a = at::empty_like(a), grad_b = at::empty_like(b), grad_t = at::empty_like(t);
  if (R == 0) return {grad_a, grad_b, grad_t};
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "slerp_backward_cuda", [&] {
    const LaunchShape shape = slerp_launch(R);
    slerp_backward_kernel<scalar_t><<<grid_of(shape), block_of(shape), 0, at::cuda::getCurrentCUDAStream()>>>(
        grad.const_data_ptr<scalar_t>(), a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(),
        t.const_data_ptr<scalar_t>(), R, D, grad_a.data_ptr<scalar_t>(), grad_b.data_ptr<scalar_t>(),
        grad_t.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_a, grad_b, grad_t};
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) {
  m.impl("slerp", &slerp_cuda);
  m.impl("slerp_backward", &slerp_backward_cuda);
}

}  // namespace cuda
}  // namespace see
