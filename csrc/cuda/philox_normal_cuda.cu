// CUDA kernel of philox_normal_: one thread per group of four elements, the
// same header as the CPU kernel (philox_normal.h), the seed read on the device.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "../philox_normal.h"

namespace see {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

template <typename T>
__global__ void philox_normal_kernel(T* out, const int64_t* seed, int64_t count) {
  const uint64_t seed_value = static_cast<uint64_t>(*seed);
  const int64_t num_groups = (count + 3) / 4;
  for (int64_t group = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; group < num_groups;
       group += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T values[4];
    philox_normal_group(seed_value, static_cast<uint64_t>(group), values);
    const int64_t first = 4 * group;
    for (int k = 0; k < 4 && first + k < count; ++k) out[first + k] = values[k];
  }
}

void philox_normal_cuda(at::Tensor& out, const at::Tensor& seed) {
  TORCH_CHECK(out.is_cuda() && out.is_contiguous() &&
                  (out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble),
              "out must be a contiguous float32 or float64 CUDA tensor");
  TORCH_CHECK(seed.dim() == 0 && seed.scalar_type() == at::kLong && seed.device() == out.device(),
              "seed must be a 0-d int64 tensor on out's device");
  const c10::cuda::CUDAGuard guard(out.device());
  const int64_t count = out.numel();
  if (count == 0) return;
  const int64_t num_groups = (count + 3) / 4;
  const int64_t blocks = std::min<int64_t>((num_groups + kThreads - 1) / kThreads, kMaxBlocks);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "philox_normal_cuda", [&] {
    philox_normal_kernel<scalar_t><<<blocks, kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        out.data_ptr<scalar_t>(), seed.const_data_ptr<int64_t>(), count);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("philox_normal_", &philox_normal_cuda); }

}  // namespace cuda
}  // namespace see
