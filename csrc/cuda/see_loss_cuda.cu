// CUDA kernel of the whole SEE loss with detached synthetic points
// (docs/method.md §1-4; see_cuda::see_loss_fused; the CPU's is
// cpu/see_loss_cpu.cpp): its SeeLossParams filled once (../op_checks.h), the
// kernels' parameters built from them (see_loss_launch.h), and the launches
// of see_loss_pipeline.cuh on the current stream, with the workspace they need.
//
// Nothing is read back, so the call neither waits for the GPU nor breaks
// CUDA-graph capture. The CPU kernel raises on a label out of range or a
// non-finite row; this one cannot without a host synchronisation, so the
// kernels flag such a call on the device and its loss and gradients are NaN
// (the number expanded and the mean cosine are still written), and its flag
// bits are the sixth output, which the deferred check copies to the host
// without waiting (see_cuda/deferred_checks.py).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

#include "../op_checks.h"
#include "../proxy_anchor.h"
#include "see_loss_pipeline.cuh"

namespace see {
namespace cuda {
namespace {

using at::Tensor;

// <<<>>> on `stream`, each launch checked.
struct StreamLaunch {
  cudaStream_t stream;

  template <typename... Params, typename... Args>
  void operator()(const LaunchShape& shape, void (*kernel)(Params...), Args&&... args) const {
    kernel<<<grid_of(shape), block_of(shape), static_cast<size_t>(shape.shared_bytes), stream>>>(
        std::forward<Args>(args)...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> see_loss(const Tensor& x, const Tensor& labels,
                                                            const Tensor& proxies, const c10::optional<Tensor>& noise,
                                                            const Tensor& seed, const SeeLossParams& params) {
  const int64_t B = x.size(0), C = proxies.size(0), D = x.size(1);
  const bool compute_grad = params.loss.compute_grad;
  const auto options = x.options();
  SeeLossKernelParams<T> p = see_loss_kernel_params<T>(
      params, x.const_data_ptr<T>(), labels.const_data_ptr<int64_t>(), proxies.const_data_ptr<T>(),
      noise.has_value() ? noise->const_data_ptr<T>() : nullptr, seed.const_data_ptr<int64_t>(), B, D,
      at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const SeeLossSizes sizes = see_loss_sizes(p);
  // Held until the launches are queued, then freed: the caching allocator hands
  // their memory only to work queued after the kernels on this stream.
  std::vector<Tensor> workspace;
  allocate_see_loss_workspace(p, sizes, [&](auto element, int64_t count) {
    using E = decltype(element);
    workspace.push_back(at::empty({count}, options.dtype(c10::CppTypeToScalarType<E>::value)));
    return workspace.back().template data_ptr<E>();
  });
  Tensor loss = at::empty({}, options), num_expanded = at::empty({}, options.dtype(at::kLong));
  Tensor mean_cosine = at::empty({}, options), value_flags = at::empty({}, options.dtype(at::kLong));
  // Without gradients both are 0-element, as on the CPU.
  Tensor grad_x = compute_grad ? at::empty({B, D}, options) : at::empty({0}, options);
  Tensor grad_proxies = compute_grad ? at::empty({C, D}, options) : at::empty({0}, options);
  p.loss = loss.data_ptr<T>();
  p.grad_x = grad_x.data_ptr<T>();
  p.grad_proxies = grad_proxies.data_ptr<T>();
  p.num_expanded = num_expanded.data_ptr<int64_t>();
  p.mean_cosine = mean_cosine.data_ptr<T>();
  p.value_flags = value_flags.data_ptr<int64_t>();
  enqueue_see_loss(p, sizes, StreamLaunch{at::cuda::getCurrentCUDAStream()});
  return {loss, grad_x, grad_proxies, num_expanded, mean_cosine, value_flags};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> see_loss_fused_cuda(
    const Tensor& x, const Tensor& labels, const Tensor& proxies, const c10::optional<Tensor>& noise,
    const Tensor& seed, int64_t n_expansion, c10::optional<int64_t> num_selected, double threshold, double lam,
    double alpha, double margin, bool compute_grad, c10::optional<int64_t> chunk_bytes, c10::string_view products) {
  check_see_loss_args(x, labels, proxies, noise, seed, n_expansion);
  // chunk_bytes is checked with the rest; the flash-style loss needs no chunks.
  const SeeLossParams params = see_loss_params(proxies.size(0), n_expansion, num_selected, threshold, lam, alpha,
                                               margin, compute_grad, chunk_bytes, std::string(products));
  const c10::cuda::CUDAGuard guard(x.device());
  std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "see_loss_fused_cuda", [&] {
    result = see_loss<scalar_t>(x, labels, proxies, noise, seed, params);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) { m.impl("see_loss_fused", &see_loss_fused_cuda); }

}  // namespace cuda
}  // namespace see
