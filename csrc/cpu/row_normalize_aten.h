// Row normalisation of whole tensors on the CPU, forward and backward: the
// row loops of normalize.h (through hot_loops.h) over row ranges in parallel.
// The formulas: docs/method.md §1, §3.1.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "hot_loops.h"

namespace see {
namespace cpu {

// Rows per task of the parallel loops over rows.
constexpr int64_t kRowGrain = 16;

// Unit rows of `in` into `out`, their norms into `norms` (float rows of one dtype).
template <typename T>
void normalize_rows_into(const at::Tensor& in, at::Tensor& out, at::Tensor& norms) {
  const int64_t D = in.size(1);
  const T* src = in.const_data_ptr<T>();
  T* dst = out.data_ptr<T>();
  T* nrm = norms.data_ptr<T>();
  at::parallel_for(0, in.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    hot_loops<T>().normalize_rows(src, dst, nrm, begin, end, D);
  });
}

// The norms row_norm of the rows of `in`.
template <typename T>
void row_norms_into(const at::Tensor& in, at::Tensor& norms) {
  const int64_t D = in.size(1);
  const T* src = in.const_data_ptr<T>();
  T* nrm = norms.data_ptr<T>();
  at::parallel_for(0, in.size(0), kRowGrain,
                   [&](int64_t begin, int64_t end) { hot_loops<T>().row_norms(src, nrm, begin, end, D); });
}

// In place, the gradient w.r.t. raw rows from the one w.r.t. their unit rows,
// with the unit rows made on the fly from the raw ones.
template <typename T>
void normalize_backward_from_raw(const at::Tensor& raw, const at::Tensor& norms, at::Tensor& grad) {
  const int64_t D = raw.size(1);
  const T* r = raw.const_data_ptr<T>();
  const T* n = norms.const_data_ptr<T>();
  T* g = grad.data_ptr<T>();
  at::parallel_for(0, raw.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    hot_loops<T>().normalize_rows_backward_from_raw(r, n, g, begin, end, D);
  });
}

// Gradient w.r.t. the rows before normalisation, from the one w.r.t. the unit rows.
template <typename T>
at::Tensor normalize_backward(const at::Tensor& unit, const at::Tensor& norms, const at::Tensor& grad_unit) {
  at::Tensor grad = at::empty_like(unit);
  const int64_t D = unit.size(1);
  const T* u = unit.const_data_ptr<T>();
  const T* n = norms.const_data_ptr<T>();
  const T* g = grad_unit.const_data_ptr<T>();
  T* out = grad.data_ptr<T>();
  at::parallel_for(0, unit.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    hot_loops<T>().normalize_rows_backward(u, n, g, out, begin, end, D);
  });
  return grad;
}

}  // namespace cpu
}  // namespace see
