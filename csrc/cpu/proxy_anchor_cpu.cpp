// CPU kernel of the fused Proxy-Anchor loss with synthetic rows: normalise the
// rows, then the shared loss on unit rows (proxy_anchor_aten.h), which takes
// the proxies chunk by chunk.
// The formulas: docs/method.md §1, §4.
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
                                                      const ProxyAnchorParams& p) {
  const int64_t B = x.size(0), m = synthetic.size(0), D = x.size(1);
  Tensor rows_unit = at::empty({B + m, D}, x.options());
  Tensor row_norms = at::empty({B + m}, x.options());
  Tensor real_unit = rows_unit.narrow(0, 0, B), synthetic_unit = rows_unit.narrow(0, B, m);
  Tensor real_norms = row_norms.narrow(0, 0, B), synthetic_norms = row_norms.narrow(0, B, m);
  normalize_rows_into<T>(x, real_unit, real_norms);
  normalize_rows_into<T>(synthetic, synthetic_unit, synthetic_norms);
  const Tensor row_labels = at::cat({labels, synthetic_labels});

  UnitRowsLoss result = loss_on_unit_rows<T>(rows_unit, row_labels.const_data_ptr<int64_t>(), B, proxies, p);
  // Three outputs of their own, also when empty: outputs that shared one tensor would alias.
  Tensor grad_x = at::empty({0}, x.options()), grad_proxies = at::empty({0}, x.options());
  Tensor grad_synthetic = at::empty({0}, x.options());
  if (p.compute_grad) {
    grad_x = normalize_backward<T>(real_unit, real_norms, result.grad_rows.narrow(0, 0, B));
    grad_proxies = result.grad_proxies;
    if (p.synthetic_grad)
      grad_synthetic = normalize_backward<T>(synthetic_unit, synthetic_norms, result.grad_rows.narrow(0, B, m));
  }
  return {at::scalar_tensor(result.loss, x.options()), grad_x, grad_proxies, grad_synthetic};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> proxy_anchor_fused_cpu(
    const Tensor& x, const Tensor& labels, const Tensor& proxies, const Tensor& synthetic,
    const Tensor& synthetic_labels, double alpha, double margin, double lam, bool compute_grad, bool synthetic_grad,
    int64_t class_offset, std::optional<int64_t> total_classes, std::optional<int64_t> chunk_bytes) {
  // Label values are checked once, in Python; one outside [0, total_classes)
  // makes the loss and the gradients NaN (proxy_anchor_aten.h).
  check_proxy_anchor_args(x, labels, proxies, synthetic, synthetic_labels);
  const ProxyAnchorParams params = proxy_anchor_params(proxies.size(0), alpha, margin, lam, compute_grad,
                                                       synthetic_grad, class_offset, total_classes, chunk_bytes);
  std::tuple<Tensor, Tensor, Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "proxy_anchor_fused_cpu", [&] {
    result = fused_loss<scalar_t>(x, labels, proxies, synthetic, synthetic_labels, params);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) { m.impl("proxy_anchor_fused", &proxy_anchor_fused_cpu); }

}  // namespace cpu
}  // namespace see
