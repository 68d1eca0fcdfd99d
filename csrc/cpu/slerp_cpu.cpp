// CPU kernels of batched slerp: one row of (a, b, t) per task (slerp_kernels.h) (docs/method.md §6).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../op_checks.h"
#include "slerp_kernels.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

constexpr int64_t kRowGrain = 16;

Tensor slerp_cpu(const Tensor& a, const Tensor& b, const Tensor& t) {
  check_slerp_args(a, b, t);
  const int64_t R = a.size(0), D = a.size(1);
  Tensor out = at::empty_like(a);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "slerp_cpu", [&] {
    const scalar_t *ap = a.const_data_ptr<scalar_t>(), *bp = b.const_data_ptr<scalar_t>();
    const scalar_t* tp = t.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, R, kRowGrain, [&](int64_t begin, int64_t end) {
      SlerpRow<scalar_t> row(D);
      for (int64_t i = begin; i < end; ++i) {
        row.load(ap + i * D, bp + i * D, D);
        slerp_row(row, tp[i], D, op + i * D);
      }
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> slerp_backward_cpu(const Tensor& grad, const Tensor& a, const Tensor& b,
                                                      const Tensor& t) {
  check_slerp_args(a, b, t);
  check_slerp_grad(grad, a);
  const int64_t R = a.size(0), D = a.size(1);
  Tensor grad_a = at::empty_like(a), grad_b = at::empty_like(b), grad_t = at::empty_like(t);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "slerp_backward_cpu", [&] {
    const scalar_t *ap = a.const_data_ptr<scalar_t>(), *bp = b.const_data_ptr<scalar_t>();
    const scalar_t *tp = t.const_data_ptr<scalar_t>(), *gp = grad.const_data_ptr<scalar_t>();
    scalar_t *gap = grad_a.data_ptr<scalar_t>(), *gbp = grad_b.data_ptr<scalar_t>(), *gtp = grad_t.data_ptr<scalar_t>();
    at::parallel_for(0, R, kRowGrain, [&](int64_t begin, int64_t end) {
      SlerpRow<scalar_t> row(D);
      std::vector<scalar_t> a_unit_bar(D), b_unit_bar(D);
      for (int64_t i = begin; i < end; ++i) {
        row.load(ap + i * D, bp + i * D, D);
        gtp[i] = slerp_row_backward(row, tp[i], gp + i * D, D, a_unit_bar.data(), b_unit_bar.data());
        normalize_row_backward(row.a_unit.data(), row.a_norm, a_unit_bar.data(), gap + i * D, D);
        normalize_row_backward(row.b_unit.data(), row.b_norm, b_unit_bar.data(), gbp + i * D, D);
      }
    });
  });
  return {grad_a, grad_b, grad_t};
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) {
  m.impl("slerp", &slerp_cpu);
  m.impl("slerp_backward", &slerp_backward_cpu);
}

}  // namespace cpu
}  // namespace see
