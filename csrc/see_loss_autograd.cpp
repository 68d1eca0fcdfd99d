// Autograd of the fused SEE loss, in C++ so that a training step spends no
// Python on it. Two kinds of forward (ops_schema.cpp):
// - the CPU kernel forms dL/dx and dL/dproxies in the forward pass
//   (compute_grad), so the backward only scales them by the incoming gradient:
//   in place unless the graph is kept for another backward (retain_graph, and
//   gradcheck's repeated backward), so that no second C x D copy of
//   dL/dproxies is made;
// - the CUDA kernels return the state their backward reads instead, and the
//   backward is see_loss_fused_backward: the gradients formed with the
//   incoming gradient folded in, written once.
// As for the operators whose autograd see_cuda/ops.py registers: x and the
// proxies are saved so that autograd's version counter refuses a backward
// after either changed in place, and a second derivative is an error.
// The formulas: docs/method.md §4.
#include <torch/autograd.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace see {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using SeeLossOutputs = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// The op's arguments, the one place their types are listed (ops_schema.cpp has
// the schema): x, labels, proxies, noise, seed, n_expansion, num_selected,
// threshold, lam, alpha, margin, compute_grad, chunk_bytes, products.
using SeeLossSignature = SeeLossOutputs(const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&,
                                        const Tensor&, int64_t, std::optional<int64_t>, double, double, double, double,
                                        bool, std::optional<int64_t>, c10::string_view);

template <typename... Args>
SeeLossOutputs call_kernel(Args&&... args) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("see_cuda::see_loss_fused", "")
                             .typed<SeeLossSignature>();
  return op.call(std::forward<Args>(args)...);
}

// The CUDA backward: (dL/dx, dL/dproxies) from grad_loss, labels, proxies, the saved state, alpha, products.
std::tuple<Tensor, Tensor> call_backward_kernel(const Tensor& grad_loss, const Tensor& labels, const Tensor& proxies,
                                                const Tensor& saved_values, const Tensor& saved_indices, double alpha,
                                                c10::string_view products) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("see_cuda::see_loss_fused_backward", "")
          .typed<std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                            double, c10::string_view)>();
  return op.call(grad_loss, labels, proxies, saved_values, saved_indices, alpha, products);
}

template <typename Signature>
struct Arity;

template <typename R, typename... Args>
struct Arity<R(Args...)> {
  static constexpr size_t value = sizeof...(Args);
};

constexpr size_t kNumInputs = Arity<SeeLossSignature>::value;

// The words of no_second_derivative in see_cuda/ops.py, for this op.
const std::string& second_derivative_message() {
  static const std::string message =
      "see_cuda::see_loss_fused has no second derivative: double backward (create_graph=True and a gradient of a "
      "gradient, e.g. a gradient penalty) is not supported by the fused kernels; use implementation='reference'";
  return message;
}

// Passes a gradient through; its own backward raises. Its inputs after the
// gradient link it to the tensors a second derivative would come through
// (the op's inputs and the incoming gradient), so that autograd reaches it.
class SecondDerivativeError : public torch::autograd::Function<SecondDerivativeError> {
 public:
  static Tensor forward(AutogradContext* /*ctx*/, const Tensor& grad, at::TensorList /*linked*/) {
    return grad.clone();
  }

  static variable_list backward(AutogradContext* /*ctx*/, variable_list /*grad_outputs*/) {
    TORCH_CHECK(false, second_derivative_message());
    return {};
  }
};

// The backward's gradient as it is (grad mode off), or, under create_graph,
// hanging off a SecondDerivativeError node linked to `inputs`: a gradient of
// it raises, while a create_graph backward that stops there is unaffected.
Tensor no_second_derivative(const Tensor& grad, std::initializer_list<Tensor> inputs) {
  if (!at::GradMode::is_enabled()) return grad;
  std::vector<Tensor> linked;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) linked.push_back(t);
  return SecondDerivativeError::apply(grad.detach(), at::TensorList(linked));
}

// A tensor of values, not a wrapper that traces or transforms (functionalization,
// a Python subclass such as FakeTensor, functorch): those see the out-of-place
// product, which a traced graph can hold.
bool holds_values(const Tensor& t) {
  static const c10::DispatchKeySet wrappers({c10::DispatchKey::Functionalize, c10::DispatchKey::Python,
                                             c10::DispatchKey::FuncTorchGradWrapper,
                                             c10::DispatchKey::FuncTorchBatched});
  return !t.key_set().has_any(wrappers);
}

class SeeLossFunction : public torch::autograd::Function<SeeLossFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& labels, const Tensor& proxies,
                               const std::optional<Tensor>& noise, const Tensor& seed, int64_t n_expansion,
                               std::optional<int64_t> num_selected, double threshold, double lam, double alpha,
                               double margin, bool compute_grad, std::optional<int64_t> chunk_bytes,
                               c10::string_view products) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, grad_x, grad_proxies, num_expanded, mean_cosine, value_flags, saved_values, saved_indices] =
        call_kernel(x, labels, proxies, noise, seed, n_expansion, num_selected, threshold, lam, alpha, margin,
                    compute_grad, chunk_bytes, products);
    // x and the proxies for the version check too: the gradients come from their values now.
    ctx->save_for_backward({grad_x, grad_proxies, x, proxies, labels, saved_values, saved_indices});
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["products"] = std::string(products);
    ctx->mark_non_differentiable(
        {grad_x, grad_proxies, num_expanded, mean_cosine, value_flags, saved_values, saved_indices});
    ctx->set_materialize_grads(false);  // only the loss has an incoming gradient: skip zeros for the rest
    return {loss, grad_x, grad_proxies, num_expanded, mean_cosine, value_flags, saved_values, saved_indices};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    variable_list grads(kNumInputs);
    const Tensor& grad_loss = grad_outputs[0];
    if (!grad_loss.defined()) return grads;
    // Unpacking checks the versions: x or the proxies changed in place since the forward is an error here.
    const variable_list saved = ctx->get_saved_variables();
    const Tensor &grad_x = saved[0], &grad_proxies = saved[1], &x = saved[2], &proxies = saved[3];
    const Tensor &labels = saved[4], &saved_values = saved[5], &saved_indices = saved[6];
    const bool needs_x = ctx->needs_input_grad(0), needs_proxies = ctx->needs_input_grad(2);
    Tensor dx, dproxies;
    if (saved_indices.numel() > 0) {  // a CUDA forward's state: the backward kernels form the scaled gradients
      const at::AutoDispatchBelowADInplaceOrView below_autograd;  // the op's result is a gradient, part of no graph
      std::tie(dx, dproxies) =
          call_backward_kernel(grad_loss, labels, proxies, saved_values, saved_indices,
                               ctx->saved_data["alpha"].toDouble(), ctx->saved_data["products"].toStringRef());
    } else {
      // Called with compute_grad = false, the saved gradients are empty and
      // autograd rejects their shape: the op's caller decides, see ops.py.
      // In place only when this backward is the graph's last: the saved
      // gradients are then released after it, and autograd takes the result
      // as the inputs' .grad without a copy.
      const bool last_use = !torch::autograd::get_current_graph_task_keep_graph() && holds_values(grad_loss);
      const at::NoGradGuard no_grad;  // the scaling is part of no graph
      auto scaled = [&](const Tensor& grad) {
        return last_use && holds_values(grad) ? grad.mul_(grad_loss) : grad.mul(grad_loss);
      };
      if (needs_x) dx = scaled(grad_x);
      if (needs_proxies) dproxies = scaled(grad_proxies);
    }
    if (needs_x) grads[0] = no_second_derivative(dx, {grad_loss, x, proxies});
    if (needs_proxies) grads[2] = no_second_derivative(dproxies, {grad_loss, x, proxies});
    return grads;
  }
};

// The Autograd kernel of the op, with the op's signature.
template <typename Signature>
struct AutogradKernel;

template <typename... Args>
struct AutogradKernel<SeeLossOutputs(Args...)> {
  static SeeLossOutputs call(Args... args) {
    const variable_list out = SeeLossFunction::apply(std::forward<Args>(args)...);
    return {out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7]};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, Autograd, m) {
  m.impl("see_loss_fused", &AutogradKernel<SeeLossSignature>::call);
}

}  // namespace see
