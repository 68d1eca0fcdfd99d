// CUDA glue of philox_normal_: the kernel is in philox_normal_kernels.cuh (docs/method.md §5).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "philox_normal_kernels.cuh"
#include "philox_normal_launch.h"

namespace see {
namespace cuda {
namespace {

void philox_normal_cuda(at::Tensor& out, const at::Tensor& seed) {
  check_philox_normal_args(out, seed);
  const c10::cuda::CUDAGuard guard(out.device());
  const int64_t count = out.numel();
  if (count == 0) return;
  const LaunchShape shape = philox_normal_launch(count);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "philox_normal_cuda", [&] {
    philox_normal_kernel<scalar_t><<<grid_of(shape), block_of(shape), 0, at::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<scalar_t>(), seed.const_data_ptr<int64_t>(), count);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("philox_normal_", &philox_normal_cuda); }

}  // namespace cuda
}  // namespace see
