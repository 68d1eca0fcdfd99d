// CUDA kernels of the whole SEE loss with detached synthetic points
// (docs/method.md §1-4; see_cuda::see_loss_fused and its backward; the CPU's
// is cpu/see_loss_cpu.cpp): its SeeLossParams filled once (../op_checks.h),
// the kernels' parameters built from them (see_loss_launch.h), and the
// launches of see_loss_pipeline.cuh on the current stream, with the
// workspace they need.
//
// Unlike the CPU kernel, the forward does not form the gradients: it returns
// the loss and the state its backward reads (two tensors), and
// see_loss_fused_backward forms dL/dx and dL/dproxies with the incoming
// gradient folded into the columns' scales, so that the gradients are written
// once, already scaled (../see_loss_autograd.cpp calls it).
//
// Nothing is read back, so a call neither waits for the GPU nor breaks
// CUDA-graph capture. The CPU kernel raises on a label out of range or a
// non-finite row; this one cannot without a host synchronisation, so the
// kernels flag such a call on the device and its loss and gradients are NaN
// (the number expanded and the mean cosine are still written), and its flag
// bits are its sixth output, which the deferred check copies to the host
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

using SeeLossOutputs = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

int multiprocessors() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

// The forward: the loss, its statistics and flags, and (with compute_grad)
// the saved state the backward reads; the gradients are the backward's, so
// their outputs are empty here.
template <typename T>
SeeLossOutputs see_loss(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                        const c10::optional<Tensor>& noise, const Tensor& seed, const SeeLossParams& params) {
  const int64_t B = x.size(0), D = x.size(1);
  const auto options = x.options();
  SeeLossKernelParams<T> p = see_loss_kernel_params<T>(
      params, x.const_data_ptr<T>(), labels.const_data_ptr<int64_t>(), proxies.const_data_ptr<T>(),
      noise.has_value() ? noise->const_data_ptr<T>() : nullptr, seed.const_data_ptr<int64_t>(), B, D);
  const SeeLossSizes sizes = see_loss_sizes(p);
  // Held until the launches are queued, then freed: the caching allocator hands
  // their memory only to work queued after the kernels on this stream.
  std::vector<Tensor> workspace;
  allocate_see_loss_workspace(p, sizes, [&](auto element, int64_t count) {
    using E = decltype(element);
    workspace.push_back(at::empty({count}, options.dtype(c10::CppTypeToScalarType<E>::value)));
    return workspace.back().template data_ptr<E>();
  });
  Tensor saved_values = at::empty({sizes.saved.values}, options);
  Tensor saved_indices = at::empty({sizes.saved.indices}, options.dtype(at::kLong));
  bind_saved_state(p, sizes.max_rows, saved_values.data_ptr<T>(), saved_indices.data_ptr<int64_t>());
  Tensor loss = at::empty({}, options), num_expanded = at::empty({}, options.dtype(at::kLong));
  Tensor mean_cosine = at::empty({}, options), value_flags = at::empty({}, options.dtype(at::kLong));
  p.loss = loss.data_ptr<T>();
  p.num_expanded = num_expanded.data_ptr<int64_t>();
  p.mean_cosine = mean_cosine.data_ptr<T>();
  p.value_flags = value_flags.data_ptr<int64_t>();
  enqueue_see_loss(p, sizes, StreamLaunch{at::cuda::getCurrentCUDAStream()});
  if (!params.loss.compute_grad) {  // no backward: the state is freed with the workspace
    saved_values = at::empty({0}, options);
    saved_indices = at::empty({0}, options.dtype(at::kLong));
  }
  return {loss, at::empty({0}, options), at::empty({0}, options), num_expanded, mean_cosine, value_flags,
          saved_values, saved_indices};
}

SeeLossOutputs see_loss_fused_cuda(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                                   const c10::optional<Tensor>& noise, const Tensor& seed, int64_t n_expansion,
                                   c10::optional<int64_t> num_selected, double threshold, double lam, double alpha,
                                   double margin, bool compute_grad, c10::optional<int64_t> chunk_bytes,
                                   c10::string_view products) {
  check_see_loss_args(x, labels, proxies, noise, seed, n_expansion);
  // chunk_bytes is checked with the rest; the flash-style loss needs no chunks.
  const SeeLossParams params = see_loss_params(proxies.size(0), n_expansion, num_selected, threshold, lam, alpha,
                                               margin, compute_grad, chunk_bytes, std::string(products));
  const c10::cuda::CUDAGuard guard(x.device());
  SeeLossOutputs result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "see_loss_fused_cuda", [&] {
    result = see_loss<scalar_t>(x, labels, proxies, noise, seed, params);
  });
  return result;
}

// The backward's arguments: a forward's saved state for B labels and these proxies, one incoming gradient.
void check_see_loss_saved(const Tensor& grad_loss, const Tensor& labels, const Tensor& proxies,
                          const Tensor& saved_values, const Tensor& saved_indices) {
  TORCH_CHECK(proxies.dim() == 2 && proxies.is_contiguous() && labels.dim() == 1, "proxies must be C x D, labels B");
  TORCH_CHECK(grad_loss.numel() == 1 && grad_loss.is_floating_point(), "grad_loss must be one floating-point value");
  TORCH_CHECK(saved_indices.scalar_type() == at::kLong && saved_indices.dim() == 1 && saved_indices.is_contiguous() &&
                  saved_indices.numel() >= kSelectionStateWords,
              "saved_indices must be a forward's int64 saved state");
  const int64_t max_rows = saved_indices.numel() - kSelectionStateWords;
  const SavedState size = saved_state_size(max_rows, labels.numel(), proxies.size(0), proxies.size(1));
  TORCH_CHECK(saved_values.scalar_type() == proxies.scalar_type() && saved_values.dim() == 1 &&
                  saved_values.is_contiguous() && saved_values.numel() == size.values,
              "saved_values must be the saved state of a forward with these labels and proxies");
  check_one_device({&grad_loss, &labels, &proxies, &saved_values, &saved_indices});
}

// The backward: (dL/dx, dL/dproxies) times grad_loss, from the forward's saved state.
std::tuple<Tensor, Tensor> see_loss_fused_backward_cuda(const Tensor& grad_loss, const Tensor& labels,
                                                        const Tensor& proxies, const Tensor& saved_values,
                                                        const Tensor& saved_indices, double alpha,
                                                        c10::string_view products) {
  const int64_t B = labels.numel(), C = proxies.size(0), D = proxies.size(1);
  check_see_loss_saved(grad_loss, labels, proxies, saved_values, saved_indices);
  const int64_t max_rows = saved_indices.numel() - kSelectionStateWords;
  const Products chosen = products_named(std::string(products));
  const c10::cuda::CUDAGuard guard(proxies.device());
  const auto options = proxies.options();
  Tensor grad_x = at::empty({B, D}, options), grad_proxies = at::empty({C, D}, options);
  AT_DISPATCH_FLOATING_TYPES(proxies.scalar_type(), "see_loss_fused_backward_cuda", [&] {
    using T = scalar_t;
    const Tensor incoming = grad_loss.to(proxies.scalar_type()).contiguous();
    auto p = see_loss_backward_kernel_params<T>(alpha, chosen, proxies.const_data_ptr<T>(), B, C, D,
                                                multiprocessors());
    bind_saved_state(p, max_rows, saved_values.data_ptr<T>(), saved_indices.data_ptr<int64_t>());
    const Tensor partial = at::empty({p.row_splits * B * D}, options);  // freed after the launches are queued
    p.grad_loss = incoming.const_data_ptr<T>();
    p.grad_x_partial = partial.data_ptr<T>();
    p.grad_x = grad_x.data_ptr<T>();
    p.grad_proxies = grad_proxies.data_ptr<T>();
    enqueue_see_loss_backward(p, StreamLaunch{at::cuda::getCurrentCUDAStream()});
  });
  return {grad_x, grad_proxies};
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CUDA, m) {
  m.impl("see_loss_fused", &see_loss_fused_cuda);
  m.impl("see_loss_fused_backward", &see_loss_fused_backward_cuda);
}

}  // namespace cuda
}  // namespace see
