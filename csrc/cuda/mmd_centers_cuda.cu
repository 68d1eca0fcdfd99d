// CUDA kernel of the Max-Mahalanobis centers: one thread per entry, closed form.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../mmd_centers.h"
#include "block_reduce.cuh"

namespace see {
namespace cuda {
namespace {

constexpr int kThreads = 256;

__global__ void mmd_centers_kernel(double* centers, int64_t num_centers, int64_t dim, double radius) {
  const int64_t total = num_centers * dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    centers[idx] = radius * mmd_center_entry(idx / dim, idx % dim, num_centers);
  }
}

void mmd_centers_cuda(at::Tensor& out, double radius) {
  TORCH_CHECK(out.dim() == 2 && out.scalar_type() == at::kDouble && out.is_contiguous() && out.is_cuda(),
              "out must be a contiguous 2-D float64 CUDA tensor");
  const c10::cuda::CUDAGuard guard(out.device());
  const int64_t total = out.numel();
  if (total == 0) return;
  const int64_t blocks = std::min<int64_t>(ceil_div(total, kThreads), 65535);
  mmd_centers_kernel<<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(out.data_ptr<double>(), out.size(0),
                                                                               out.size(1), radius);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("mmd_centers_", &mmd_centers_cuda); }

}  // namespace cuda
}  // namespace see
