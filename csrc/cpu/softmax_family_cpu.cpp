// CPU kernels of the softmax-family losses (docs/method.md §7): the classes in
// chunks of at most chunk_bytes of cosines (class_chunks.h, the loop the
// Proxy-Anchor glue uses too), so that memory is O(N x chunk) for any C. The
// first pass takes each row's LSE online; the gradient needs every row's final LSE before any class's
// gradient is known (dL/dp_c sums over all rows), so a second pass forms the
// chunk's cosines again and turns them into dL/dS in place, then
// dL/dP̂_c = G_c^T X̂ and dL/dX̂ += G_c P̂_c. The class vectors may have any
// strides (PML's W is D x C): a chunk is made contiguous, never the whole.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "../op_checks.h"
#include "class_chunks.h"
#include "softmax_family_kernels.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

template <typename T>
Tensor unit_rows(const Tensor& x, Tensor& norms) {
  Tensor unit = at::empty_like(x);
  norms = at::empty({x.size(0)}, x.options());
  normalize_rows_into<T>(x, unit, norms);
  return unit;
}

template <typename T>
Tensor rows_stats(const Tensor& x, const Tensor& labels, const Tensor& classes, const SoftmaxFamilyParams& p) {
  const int64_t N = x.size(0);
  Tensor norms;
  const Tensor rows_unit = unit_rows<T>(x, norms);
  Tensor stats = at::zeros({4, N}, x.options().dtype(at::kDouble));
  double* base = stats.data_ptr<double>();
  const RowStats rows{base, base + N, base + 2 * N, base + 3 * N};
  for (int64_t i = 0; i < N; ++i) rows.max[i] = -INFINITY;
  const int64_t width = chunk_width<T>(classes.size(0), N, p.chunk_bytes);
  for_each_class_chunk<T>(rows_unit, classes, width, CosineLayout::kRowsByClasses, [&](ClassChunk& k) {
    const SoftmaxChunk<T> chunk{k.cosines.data_ptr<T>(), N, k.count, p.class_offset + k.first,
                                labels.const_data_ptr<int64_t>(), p.map};
    at::parallel_for(0, N, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) softmax_row_stats(chunk, i, rows);
    });
  });
  return stats.t().contiguous();
}

template <typename T>
std::tuple<Tensor, Tensor> rows_grad(const Tensor& x, const Tensor& labels, const Tensor& classes, const Tensor& lse,
                                     const Tensor& weight, const SoftmaxFamilyParams& p) {
  const int64_t N = x.size(0);
  Tensor norms;
  const Tensor rows_unit = unit_rows<T>(x, norms);
  Tensor grad_unit = at::zeros_like(rows_unit);
  Tensor grad_classes = at::empty(classes.sizes(), x.options());
  const Tensor lse_c = lse.contiguous(), weight_c = weight.contiguous();
  const int64_t width = chunk_width<T>(classes.size(0), N, p.chunk_bytes);
  for_each_class_chunk<T>(rows_unit, classes, width, CosineLayout::kRowsByClasses, [&](ClassChunk& k) {
    Tensor& G = k.cosines;  // S_c, then G_c in place
    const SoftmaxChunk<T> chunk{G.data_ptr<T>(), N, k.count, p.class_offset + k.first, labels.const_data_ptr<int64_t>(),
                                p.map};
    at::parallel_for(0, N, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        softmax_row_grad(chunk, i, lse_c.const_data_ptr<double>(), weight_c.const_data_ptr<double>());
    });
    Tensor grad_raw = grad_classes.narrow(0, k.first, k.count);
    at::mm_out(grad_raw, G.t(), rows_unit);  // dL/dP̂ of the chunk, made dL/dP in place
    normalize_backward_from_raw<T>(k.raw, k.norms, grad_raw);
    grad_unit.addmm_(G, k.unit);
  });
  return {normalize_backward<T>(rows_unit, norms, grad_unit), grad_classes};
}

Tensor softmax_family_rows_cpu(const Tensor& x, const Tensor& labels, const Tensor& classes, double scale,
                               double bias, int64_t margin_kind, double margin, int64_t class_offset,
                               std::optional<int64_t> chunk_bytes) {
  check_softmax_family_args(x, labels, classes);
  const SoftmaxFamilyParams params = softmax_family_params(scale, bias, margin_kind, margin, class_offset, chunk_bytes);
  Tensor result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "softmax_family_rows_cpu", [&] {
    result = rows_stats<scalar_t>(x, labels, classes, params);
  });
  return result;
}

std::tuple<Tensor, Tensor> softmax_family_grad_cpu(const Tensor& x, const Tensor& labels, const Tensor& classes,
                                                   const Tensor& lse, const Tensor& weight, double scale, double bias,
                                                   int64_t margin_kind, double margin, int64_t class_offset,
                                                   std::optional<int64_t> chunk_bytes) {
  check_softmax_family_args(x, labels, classes);
  const SoftmaxFamilyParams params = softmax_family_params(scale, bias, margin_kind, margin, class_offset, chunk_bytes);
  check_row_doubles(x, lse, weight);
  std::tuple<Tensor, Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "softmax_family_grad_cpu", [&] {
    result = rows_grad<scalar_t>(x, labels, classes, lse, weight, params);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) {
  m.impl("softmax_family_rows", &softmax_family_rows_cpu);
  m.impl("softmax_family_grad", &softmax_family_grad_cpu);
}

}  // namespace cpu
}  // namespace see
