// CPU kernels of the SEE expansion: sources in parallel, one frame per source (docs/method.md §3).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "expansion_scratch.h"
#include "hot_loops.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

Tensor expansion_cpu(const Tensor& z, const Tensor& w, const Tensor& noise) {
  check_expansion_args(z, w, noise);
  const int64_t k = z.size(0), D = z.size(1), n = noise.size(1) + 1;
  Tensor out = at::empty({k, n, D}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "expansion_cpu", [&] {
    const scalar_t *zp = z.const_data_ptr<scalar_t>(), *wp = w.const_data_ptr<scalar_t>();
    const scalar_t* np = noise.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, k, 1, [&](int64_t begin, int64_t end) {
      const ExpansionScratch<scalar_t> scratch(n, D, false);
      const auto expand_source = hot_loops<scalar_t>().expand_source;
      for (int64_t i = begin; i < end; ++i)
        expand_source(zp + i * D, wp + i * D, np + i * (n - 1) * D, n, D, scratch.buffers(), op + i * n * D);
    });
  });
  return out;
}

Tensor expansion_backward_cpu(const Tensor& grad, const Tensor& z, const Tensor& w, const Tensor& noise) {
  check_expansion_args(z, w, noise);
  const int64_t k = z.size(0), D = z.size(1), n = noise.size(1) + 1;
  check_expansion_grad(grad, z, noise);
  Tensor grad_z = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "expansion_backward_cpu", [&] {
    const scalar_t *zp = z.const_data_ptr<scalar_t>(), *wp = w.const_data_ptr<scalar_t>();
    const scalar_t *np = noise.const_data_ptr<scalar_t>(), *gp = grad.const_data_ptr<scalar_t>();
    scalar_t* out = grad_z.data_ptr<scalar_t>();
    at::parallel_for(0, k, 1, [&](int64_t begin, int64_t end) {
      const ExpansionScratch<scalar_t> scratch(n, D, true);
      const auto expand_source_backward = hot_loops<scalar_t>().expand_source_backward;
      for (int64_t i = begin; i < end; ++i)
        expand_source_backward(zp + i * D, wp + i * D, np + i * (n - 1) * D, gp + i * n * D, n, D, scratch.buffers(),
                               out + i * D);
    });
  });
  return grad_z;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) {
  m.impl("expansion", &expansion_cpu);
  m.impl("expansion_backward", &expansion_backward_cpu);
}

}  // namespace cpu
}  // namespace see
