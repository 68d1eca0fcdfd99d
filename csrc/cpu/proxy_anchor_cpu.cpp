// CPU kernel of the fused Proxy-Anchor loss with synthetic rows: normalise the
// rows and proxies, then the shared loss on unit rows (proxy_anchor_aten.h).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "proxy_anchor_aten.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor> fused_loss(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                                                      const Tensor& synthetic, const Tensor& synthetic_labels,
                                                      double alpha, double margin, double lam, bool compute_grad,
                                                      bool synthetic_grad) {
  const int64_t B = x.size(0), m = synthetic.size(0), C = proxies.size(0), D = x.size(1);
  Tensor rows_unit = at::empty({B + m, D}, x.options());
  Tensor row_norms = at::empty({B + m}, x.options());
  Tensor real_unit = rows_unit.narrow(0, 0, B), synthetic_unit = rows_unit.narrow(0, B, m);
  Tensor real_norms = row_norms.narrow(0, 0, B), synthetic_norms = row_norms.narrow(0, B, m);
  normalize_rows_into<T>(x, real_unit, real_norms);
  normalize_rows_into<T>(synthetic, synthetic_unit, synthetic_norms);
  Tensor proxy_norms = at::empty({C}, x.options());
  row_norms_into<T>(proxies, proxy_norms);
  const Tensor row_labels = at::cat({labels, synthetic_labels});

  UnitRowsLoss result = loss_on_unit_rows<T>(rows_unit, row_labels.const_data_ptr<int64_t>(), B, proxies, proxy_norms,
                                             alpha, margin, lam, compute_grad, synthetic_grad);
  Tensor empty = at::empty({0}, x.options());
  Tensor grad_x = empty, grad_proxies = empty, grad_synthetic = empty;
  if (compute_grad) {
    grad_x = normalize_backward<T>(real_unit, real_norms, result.grad_real);
    normalize_backward_from_raw<T>(proxies, proxy_norms, result.grad_proxies);
    grad_proxies = result.grad_proxies;
    if (synthetic_grad) grad_synthetic = normalize_backward<T>(synthetic_unit, synthetic_norms, result.grad_synthetic);
  }
  return {at::scalar_tensor(result.loss, x.options()), grad_x, grad_proxies, grad_synthetic};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> proxy_anchor_fused_cpu(const Tensor& x, const Tensor& labels,
                                                                  const Tensor& proxies, const Tensor& synthetic,
                                                                  const Tensor& synthetic_labels, double alpha,
                                                                  double margin, double lam, bool compute_grad,
                                                                  bool synthetic_grad) {
  // Label values are checked once, in Python; an out-of-range one makes the
  // loss and the gradients NaN (proxy_anchor_kernels.h).
  check_proxy_anchor_args(x, labels, proxies, synthetic, synthetic_labels);
  std::tuple<Tensor, Tensor, Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "proxy_anchor_fused_cpu", [&] {
    result = fused_loss<scalar_t>(x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, compute_grad,
                                  synthetic_grad);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) { m.impl("proxy_anchor_fused", &proxy_anchor_fused_cpu); }

}  // namespace cpu
}  // namespace see
