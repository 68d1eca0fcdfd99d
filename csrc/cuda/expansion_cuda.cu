// CUDA kernels of the SEE expansion: one thread block per source (docs/method.md §3).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"

#include "expansion_kernels.cuh"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

// Plans the launch of k sources (expansion_launch.h) for this device,
// allocates the global scratch if the plan has any, and lets the kernel claim
// shared memory beyond the default limit when it needs to.
template <typename T, typename Kernel>
ExpansionLaunch prepare_launch(Kernel kernel, const ExpansionSizes& sizes, int64_t k, const at::TensorOptions& options,
                               Tensor& global_buffer, ScratchPlacement<T>& placement) {
  const int64_t optin = static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin);
  const ExpansionLaunch plan = plan_expansion_launch(sizes, k, sizeof(T), optin);
  if (plan.global_elems > 0) global_buffer = at::empty({plan.global_elems}, options);
  placement = plan.placement(plan.global_elems > 0 ? global_buffer.data_ptr<T>() : static_cast<T*>(nullptr));
  if (plan.needs_shared_opt_in()) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(plan.shape.shared_bytes)));
  }
  return plan;
}

Tensor expansion_cuda(const Tensor& z, const Tensor& w, const Tensor& noise) {
  check_expansion_args(z, w, noise);
  const c10::cuda::CUDAGuard guard(z.device());
  const int64_t k = z.size(0), D = z.size(1), n = noise.size(1) + 1;
  Tensor out = at::empty({k, n, D}, z.options());
  if (k == 0) return out;
  const ExpansionSizes sizes{n, D, false};
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "expansion_cuda", [&] {
    Tensor global_scratch;
    ScratchPlacement<scalar_t> placement;
    const auto kernel = expansion_forward_kernel<scalar_t>;
    const ExpansionLaunch plan = prepare_launch(kernel, sizes, k, z.options(), global_scratch, placement);
    kernel<<<grid_of(plan.shape), block_of(plan.shape), plan.shape.shared_bytes, at::cuda::getCurrentCUDAStream()>>>(
        z.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), noise.const_data_ptr<scalar_t>(), sizes,
        placement, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

Tensor expansion_backward_cuda(const Tensor& grad, const Tensor& z, const Tensor& w, const Tensor& noise) {
  check_expansion_args(z, w, noise);
  const int64_t k = z.size(0), D = z.size(1), n = noise.size(1) + 1;
  check_expansion_grad(grad, z, noise);
  const c10::cuda::CUDAGuard guard(z.device());
  Tensor grad_z = at::empty_like(z);
  if (k == 0) return grad_z;
  const ExpansionSizes sizes{n, D, true};
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "expansion_backward_cuda", [&] {
    Tensor global_scratch;
    ScratchPlacement<scalar_t> placement;
    const auto kernel = expansion_backward_kernel<scalar_t>;
    const ExpansionLaunch plan = prepare_launch(kernel, sizes, k, z.options(), global_scratch, placement);
    kernel<<<grid_of(plan.shape), block_of(plan.shape), plan.shape.shared_bytes, at::cuda::getCurrentCUDAStream()>>>(
        grad.const_data_ptr<scalar_t>(), z.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
        noise.const_data_ptr<scalar_t>(), sizes, placement, grad_z.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_z;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) {
  m.impl("expansion", &expansion_cuda);
  m.impl("expansion_backward", &expansion_backward_cuda);
}

}  // namespace cuda
}  // namespace see
