// CPU kernels of batched slerp: one row of (a, b, t) per task.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "../expansion.h"
#include "../normalize.h"
#include "../op_checks.h"
#include "../slerp.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

constexpr int64_t kRowGrain = 16;

// Unit rows of one (a, b) pair and the angle between them.
template <typename T>
struct SlerpRow {
  std::vector<T> a_unit, b_unit, e;  // e: the fallback tangent at the antipode
  T a_norm, b_norm, theta, e_raw_norm, chord_minus, chord_plus;
  int64_t axis;
  bool antipodal;

  explicit SlerpRow(int64_t D) : a_unit(D), b_unit(D), e(D) {}

  void load(const T* a, const T* b, int64_t D) {
    a_norm = normalize_row(a, a_unit.data(), D);
    b_norm = normalize_row(b, b_unit.data(), D);
    T minus_sq = T(0), plus_sq = T(0);
    for (int64_t d = 0; d < D; ++d) {
      const T m = a_unit[d] - b_unit[d], p = a_unit[d] + b_unit[d];
      minus_sq += m * m;
      plus_sq += p * p;
    }
    antipodal = !(plus_sq > T(0));
    chord_minus = std::sqrt(minus_sq);
    chord_plus = std::sqrt(plus_sq);
    theta = angle_from_chords(chord_minus, chord_plus);
    if (antipodal) {  // the great circle through the best-conditioned axis
      axis = least_aligned_axis(a_unit.data(), D);
      for (int64_t d = 0; d < D; ++d) e[d] = -a_unit[axis] * a_unit[d];
      e[axis] += T(1);
      T sq = T(0);
      for (int64_t d = 0; d < D; ++d) sq += e[d] * e[d];
      e_raw_norm = std::sqrt(sq);
      for (int64_t d = 0; d < D; ++d) e[d] = e[d] / e_raw_norm;
    }
  }
};

template <typename T>
void slerp_row(const SlerpRow<T>& row, T t, int64_t D, T* out) {
  const T tt = t * row.theta;
  if (row.antipodal) {
    for (int64_t d = 0; d < D; ++d) out[d] = std::cos(tt) * row.a_unit[d] + std::sin(tt) * row.e[d];
    return;
  }
  const T ratio = t * sinc(tt) / sinc(row.theta);
  const T cos_tt = std::cos(tt);
  const bool near = row.chord_minus <= row.chord_plus;
  const T half_sq = T(0.5) * (near ? row.chord_minus * row.chord_minus : row.chord_plus * row.chord_plus);
  for (int64_t d = 0; d < D; ++d) {
    const T a = row.a_unit[d], b = row.b_unit[d];
    out[d] = cos_tt * a + ratio * slerp_tangent(a, b, half_sq, near);
  }
}

// Gradients w.r.t. the unit rows and t; see slerp.h for the weights.
template <typename T>
T slerp_row_backward(const SlerpRow<T>& row, T t, const T* g, int64_t D, T* a_unit_bar, T* b_unit_bar) {
  const T theta = row.theta, tt = t * theta, s = T(1) - t;
  T P = T(0), Q = T(0);
  for (int64_t d = 0; d < D; ++d) {
    P += g[d] * row.a_unit[d];
    Q += g[d] * row.b_unit[d];
  }
  if (row.antipodal) {  // out = cos(tθ) â + sin(tθ) e(â); θ = π carries no gradient
    T Ge = T(0);
    for (int64_t d = 0; d < D; ++d) Ge += g[d] * row.e[d];
    T p_dot_a = T(0);  // p = (I - e e^T) g
    for (int64_t d = 0; d < D; ++d) p_dot_a += (g[d] - Ge * row.e[d]) * row.a_unit[d];
    const T a_axis = row.a_unit[row.axis];
    for (int64_t d = 0; d < D; ++d) {
      const T p = g[d] - Ge * row.e[d];
      a_unit_bar[d] = std::cos(tt) * g[d] - std::sin(tt) * a_axis * p / row.e_raw_norm;
      b_unit_bar[d] = T(0);
    }
    a_unit_bar[row.axis] -= std::sin(tt) * p_dot_a / row.e_raw_norm;
    return theta * (-std::sin(tt) * P + std::cos(tt) * Ge);
  }
  const T st = sinc(theta);
  const T c2 = t * sinc(tt) / st;
  const T c1 = s * sinc(s * theta) / st;
  const T k = slerp_angle_weight(s, theta) * P + slerp_angle_weight(t, theta) * Q;
  for (int64_t d = 0; d < D; ++d) {
    a_unit_bar[d] = c1 * g[d] - k * row.b_unit[d];
    b_unit_bar[d] = c2 * g[d] - k * row.a_unit[d];
  }
  return (-std::cos(s * theta) * P + std::cos(tt) * Q) / st;
}

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
