// CUDA kernels of the SEE expansion: one thread block per source.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"

#include <algorithm>

#include "expansion_kernels.cuh"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

// Dynamic shared memory the kernels above may claim beyond the opt-in limit:
// room for their static reduction buffers.
constexpr int64_t kStaticSharedReserve = 2048;
constexpr int64_t kDefaultSharedLimit = 48 * 1024;

// Threads per source: one coordinate per thread up to 256, and at least two
// warps (the backward runs its two triangular solves on different warps).
int threads_for(int64_t D) { return static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(64, ceil_div(D, 32) * 32))); }

// Decides where the scratch lives (see expansion_workspace.cuh), allocates the
// global part if any, and returns the dynamic shared memory to launch with.
template <typename T, typename Kernel>
int64_t place_scratch(Kernel kernel, const ExpansionSizes& sizes, int64_t k, const at::TensorOptions& options,
                      Tensor& global_buffer, ScratchPlacement<T>& placement) {
  const int64_t budget =
      static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin) - kStaticSharedReserve;
  const int64_t small_bytes = sizes.small_elems() * static_cast<int64_t>(sizeof(T));
  const int64_t large_bytes = sizes.large_elems() * static_cast<int64_t>(sizeof(T));
  placement = ScratchPlacement<T>{nullptr, nullptr};
  int64_t shared_bytes = 0;
  if (small_bytes + large_bytes <= budget) {
    shared_bytes = small_bytes + large_bytes;
  } else {
    const bool small_fits = small_bytes <= budget;
    const int64_t global_elems = sizes.large_elems() + (small_fits ? 0 : sizes.small_elems());
    global_buffer = at::empty({k * global_elems}, options);
    T* base = global_buffer.data_ptr<T>();
    placement.large_global = base;
    if (small_fits) {
      shared_bytes = small_bytes;
    } else {
      placement.small_global = base + k * sizes.large_elems();
    }
  }
  if (shared_bytes > kDefaultSharedLimit) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(shared_bytes)));
  }
  return shared_bytes;
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
    const int64_t shared_bytes = place_scratch(kernel, sizes, k, z.options(), global_scratch, placement);
    kernel<<<k, threads_for(D), shared_bytes, at::cuda::getCurrentCUDAStream()>>>(
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
    const int64_t shared_bytes = place_scratch(kernel, sizes, k, z.options(), global_scratch, placement);
    kernel<<<k, threads_for(D), shared_bytes, at::cuda::getCurrentCUDAStream()>>>(
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
