// Autograd of the fused SEE loss, in C++ so that a training step spends no
// Python on it. The kernels form dL/dx and dL/dproxies in the forward pass
// (compute_grad), so the backward only scales them by the incoming gradient.
#include <torch/autograd.h>
#include <torch/library.h>

namespace see {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using SeeLossOutputs = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>;

SeeLossOutputs call_kernel(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                           const c10::optional<Tensor>& noise, const Tensor& seed, int64_t n, int64_t num_selected,
                           double threshold, double lam, double alpha, double margin, bool compute_grad,
                           int64_t chunk_bytes) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("see_cuda::see_loss_fused", "")
                             .typed<SeeLossOutputs(const Tensor&, const Tensor&, const Tensor&,
                                                   const c10::optional<Tensor>&, const Tensor&, int64_t, int64_t,
                                                   double, double, double, double, bool, int64_t)>();
  return op.call(x, labels, proxies, noise, seed, n, num_selected, threshold, lam, alpha, margin, compute_grad,
                 chunk_bytes);
}

constexpr size_t kNumInputs = 13;

class SeeLossFunction : public torch::autograd::Function<SeeLossFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& labels, const Tensor& proxies,
                               const c10::optional<Tensor>& noise, const Tensor& seed, int64_t n,
                               int64_t num_selected, double threshold, double lam, double alpha, double margin,
                               bool compute_grad, int64_t chunk_bytes) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, grad_x, grad_proxies, num_expanded, mean_cosine] = call_kernel(
        x, labels, proxies, noise, seed, n, num_selected, threshold, lam, alpha, margin, compute_grad, chunk_bytes);
    ctx->save_for_backward({grad_x, grad_proxies});
    ctx->mark_non_differentiable({grad_x, grad_proxies, num_expanded, mean_cosine});
    ctx->set_materialize_grads(false);  // only the loss has an incoming gradient: skip zeros for the rest
    return {loss, grad_x, grad_proxies, num_expanded, mean_cosine};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list grads(kNumInputs);
    const Tensor& grad_loss = grad_outputs[0];
    if (!grad_loss.defined()) return grads;
    const variable_list saved = ctx->get_saved_variables();
    // Called with compute_grad = false, the saved gradients are empty and
    // autograd rejects their shape: the op's caller decides, see ops.py.
    if (ctx->needs_input_grad(0)) grads[0] = saved[0].mul(grad_loss);
    if (ctx->needs_input_grad(2)) grads[2] = saved[1].mul(grad_loss);
    return grads;
  }
};

SeeLossOutputs see_loss_fused_autograd(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                                       const c10::optional<Tensor>& noise, const Tensor& seed, int64_t n,
                                       int64_t num_selected, double threshold, double lam, double alpha, double margin,
                                       bool compute_grad, int64_t chunk_bytes) {
  const variable_list out = SeeLossFunction::apply(x, labels, proxies, noise, seed, n, num_selected, threshold, lam,
                                                   alpha, margin, compute_grad, chunk_bytes);
  return {out[0], out[1], out[2], out[3], out[4]};
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, Autograd, m) { m.impl("see_loss_fused", &see_loss_fused_autograd); }

}  // namespace see
