// CUDA glue of the Max-Mahalanobis centers: the kernel is in mmd_centers_kernels.cuh (docs/method.md §3.3).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "mmd_centers_kernels.cuh"
#include "mmd_centers_launch.h"

namespace see {
namespace cuda {
namespace {

void mmd_centers_cuda(at::Tensor& out, double radius) {
  check_mmd_centers_args(out);
  const c10::cuda::CUDAGuard guard(out.device());
  const int64_t total = out.numel();
  if (total == 0) return;
  const LaunchShape shape = mmd_centers_launch(total);
  mmd_centers_kernel<<<grid_of(shape), block_of(shape), 0, at::cuda::getCurrentCUDAStream()>>>(
      out.data_ptr<double>(), out.size(0), out.size(1), radius);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("mmd_centers_", &mmd_centers_cuda); }

}  // namespace cuda
}  // namespace see
