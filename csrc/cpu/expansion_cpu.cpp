// CPU kernels of the SEE expansion: sources in parallel, one frame per source.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "expansion_kernels.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

void check_expansion_inputs(const Tensor& z, const Tensor& w, const Tensor& noise) {
  TORCH_CHECK(z.dim() == 2 && w.sizes() == z.sizes(), "z and w must be k x D");
  TORCH_CHECK(noise.dim() == 3 && noise.size(0) == z.size(0) && noise.size(2) == z.size(1),
              "noise must be k x (n-1) x D");
  TORCH_CHECK(z.scalar_type() == w.scalar_type() && z.scalar_type() == noise.scalar_type(), "one dtype expected");
  TORCH_CHECK(z.is_contiguous() && w.is_contiguous() && noise.is_contiguous(), "inputs must be contiguous");
  TORCH_CHECK(z.size(1) >= noise.size(1) + 2, "the frame needs D >= n + 1");
}

// Scratch of one source: its frame, ẑ and the Gram-Schmidt coefficients.
template <typename T>
struct FrameScratch {
  std::vector<T> frame, z_unit, gs_coef, pass_coef;
  FrameScratch(int64_t n, int64_t D) : frame((n + 1) * D), z_unit(D), gs_coef((n + 1) * (n + 1)), pass_coef(n + 1) {}
};

Tensor expansion_cpu(const Tensor& z, const Tensor& w, const Tensor& noise) {
  check_expansion_inputs(z, w, noise);
  const int64_t k = z.size(0), D = z.size(1), n = noise.size(1) + 1;
  Tensor out = at::empty({k, n, D}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "expansion_cpu", [&] {
    const scalar_t *zp = z.const_data_ptr<scalar_t>(), *wp = w.const_data_ptr<scalar_t>();
    const scalar_t* np = noise.const_data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, k, 1, [&](int64_t begin, int64_t end) {
      FrameScratch<scalar_t> scratch(n, D);
      for (int64_t i = begin; i < end; ++i) {
        const auto geo = build_frame(zp + i * D, wp + i * D, np + i * (n - 1) * D, n, D, scratch.z_unit.data(),
                                     scratch.frame.data(), scratch.gs_coef.data(), scratch.pass_coef.data());
        emit_points(geo, scratch.frame.data(), n, D, op + i * n * D, scratch.z_unit.data());  // ẑ is spent
      }
    });
  });
  return out;
}

Tensor expansion_backward_cpu(const Tensor& grad, const Tensor& z, const Tensor& w, const Tensor& noise) {
  check_expansion_inputs(z, w, noise);
  const int64_t k = z.size(0), D = z.size(1), n = noise.size(1) + 1;
  TORCH_CHECK(grad.sizes() == at::IntArrayRef({k, n, D}) && grad.is_contiguous(), "grad must be k x n x D");
  Tensor grad_z = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "expansion_backward_cpu", [&] {
    const scalar_t *zp = z.const_data_ptr<scalar_t>(), *wp = w.const_data_ptr<scalar_t>();
    const scalar_t *np = noise.const_data_ptr<scalar_t>(), *gp = grad.const_data_ptr<scalar_t>();
    scalar_t* out = grad_z.data_ptr<scalar_t>();
    at::parallel_for(0, k, 1, [&](int64_t begin, int64_t end) {
      FrameScratch<scalar_t> scratch(n, D);
      std::vector<scalar_t> h(n * D), work(2 * D);
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t* source_noise = np + i * (n - 1) * D;
        const auto geo = build_frame(zp + i * D, wp + i * D, source_noise, n, D, scratch.z_unit.data(),
                                     scratch.frame.data(), scratch.gs_coef.data(), scratch.pass_coef.data());
        source_backward(geo, scratch.frame.data(), scratch.gs_coef.data(), scratch.z_unit.data(), source_noise,
                        gp + i * n * D, n, D, h.data(), work.data(), out + i * D);
      }
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
