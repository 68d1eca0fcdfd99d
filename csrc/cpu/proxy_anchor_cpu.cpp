// CPU kernel of the fused Proxy-Anchor loss with synthetic rows.
//
// One similarity matrix S = [x̂; ẑ] P̂^T (N x C) is formed, turned in place into
// the exponentials the loss and its gradient share, and reduced per column.
// dL/dS is never written out: it equals E diag(scale) plus one entry per row
// (the positive), so the gradients are E (scale ⊙ P̂), scale ⊙ (E^T X̂) and a
// gather/scatter of the positives. Peak extra memory: one N x C matrix.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../normalize.h"
#include "proxy_anchor_kernels.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

// Columns per task: enough work per thread, few enough tasks to balance.
constexpr int64_t kColumnGrain = 64;
constexpr int64_t kRowGrain = 16;

template <typename T>
void normalize_rows_into(const Tensor& in, Tensor& out, Tensor& norms) {
  const int64_t D = in.size(1);
  const T* src = in.const_data_ptr<T>();
  T* dst = out.data_ptr<T>();
  T* nrm = norms.data_ptr<T>();
  at::parallel_for(0, in.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) nrm[i] = normalize_row(src + i * D, dst + i * D, D);
  });
}

template <typename T>
Tensor normalize_backward(const Tensor& unit, const Tensor& norms, const Tensor& grad_unit) {
  Tensor grad = at::empty_like(unit);
  const int64_t D = unit.size(1);
  const T* u = unit.const_data_ptr<T>();
  const T* n = norms.const_data_ptr<T>();
  const T* g = grad_unit.const_data_ptr<T>();
  T* out = grad.data_ptr<T>();
  at::parallel_for(0, unit.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) normalize_row_backward(u + i * D, n[i], g + i * D, out + i * D, D);
  });
  return grad;
}

void check_labels_in_range(const Tensor& labels, int64_t C, const char* name) {
  const int64_t* y = labels.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i)
    TORCH_CHECK(y[i] >= 0 && y[i] < C, name, " must lie in [0, ", C, "), got ", y[i]);
}

// Per-part (real rows, synthetic rows) column state of the loss.
template <typename T>
struct PartState {
  int64_t row_begin, row_end;
  const int64_t* labels;
  std::vector<T> neg_ref, pos_ref;
  std::vector<double> neg_sum, pos_sum;
  std::vector<char> has_positive;
  int64_t num_positive_classes = 0;
  Tensor pos_exp;          // per row: exp of its positive entry
  Tensor neg_scale, pos_scale;  // per column
};

template <typename T>
PartState<T> make_part(int64_t row_begin, int64_t row_end, const Tensor& labels, int64_t C, const Tensor& like) {
  PartState<T> part;
  part.row_begin = row_begin;
  part.row_end = row_end;
  part.labels = labels.const_data_ptr<int64_t>();
  part.neg_ref.assign(C, T(1));    // cosines are <= 1 ...
  part.pos_ref.assign(C, T(-1));   // ... and >= -1
  part.neg_sum.assign(C, 0.0);
  part.pos_sum.assign(C, 0.0);
  part.has_positive.assign(C, 0);
  for (int64_t i = 0; i < row_end - row_begin; ++i) part.has_positive[part.labels[i]] = 1;
  for (int64_t c = 0; c < C; ++c) part.num_positive_classes += part.has_positive[c];
  part.pos_exp = at::zeros({row_end - row_begin}, like.options());
  part.neg_scale = at::empty({C}, like.options());
  part.pos_scale = at::empty({C}, like.options());
  return part;
}

template <typename T>
void reduce_columns(T* S, int64_t C, double alpha, PartState<T>& part) {
  const bool exact_refs = !fixed_ref_is_safe<T>(alpha);
  T* pos_exp = part.pos_exp.template data_ptr<T>();
  at::parallel_for(0, C, kColumnGrain, [&](int64_t c0, int64_t c1) {
    if (exact_refs) {
      column_extrema(S, C, part.labels, part.row_begin, part.row_end, c0, c1, part.neg_ref.data(), part.pos_ref.data());
    }
    exponentiate_rows(S, C, part.labels, part.row_begin, part.row_end, c0, c1, static_cast<T>(alpha),
                      part.neg_ref.data(), part.pos_ref.data(), part.neg_sum.data(), part.pos_sum.data(), pos_exp);
  });
}

template <typename T>
double finish_part(PartState<T>& part, int64_t C, double alpha, double margin, double weight) {
  ColumnPart<T> view{part.neg_sum.data(), part.pos_sum.data(), part.neg_ref.data(),        part.pos_ref.data(),
                     part.has_positive.data(), part.num_positive_classes, weight};
  return finish_columns(view, C, alpha, margin, part.neg_scale.template data_ptr<T>(),
                        part.pos_scale.template data_ptr<T>());
}

// The gradient of a row's positive entry, pos_scale[y_i] * pos_exp[i].
template <typename T>
T positive_grad(const PartState<T>& part, int64_t i) {
  return part.pos_scale.template const_data_ptr<T>()[part.labels[i]] * part.pos_exp.template const_data_ptr<T>()[i];
}

// dL/d(input rows) of one part: E (neg_scale ⊙ P̂) from one product, then, per
// row, its positive term and the normalisation backward in one pass.
template <typename T>
Tensor rows_grad(const Tensor& E, const Tensor& proxies_unit, const PartState<T>& part, const Tensor& rows_unit,
                 const Tensor& row_norms) {
  Tensor unit_grad = at::mm(E, proxies_unit * part.neg_scale.unsqueeze(1));
  Tensor grad = at::empty_like(unit_grad);
  const int64_t D = rows_unit.size(1);
  const T* p_unit = proxies_unit.const_data_ptr<T>();
  const T* unit = rows_unit.const_data_ptr<T>();
  const T* norms = row_norms.const_data_ptr<T>();
  T* ug = unit_grad.data_ptr<T>();
  T* out = grad.data_ptr<T>();
  at::parallel_for(0, rows_unit.size(0), kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T g = positive_grad(part, i);
      const T* proxy = p_unit + part.labels[i] * D;
      T* row = ug + i * D;
      for (int64_t d = 0; d < D; ++d) row[d] += g * proxy[d];
      normalize_row_backward(unit + i * D, norms[i], row, out + i * D, D);
    }
  });
  return grad;
}

// dL/dproxies: neg_scale ⊙ (E^T X̂) of each part, the positives scattered to
// their classes, then the normalisation backward, with one product per part.
template <typename T>
Tensor proxies_grad(const Tensor& proxies_unit, const Tensor& proxy_norms,
                    std::initializer_list<std::tuple<const Tensor*, const Tensor*, const PartState<T>*>> parts) {
  const int64_t C = proxies_unit.size(0), D = proxies_unit.size(1);
  Tensor unit_grad = at::zeros_like(proxies_unit);
  T* ug = unit_grad.data_ptr<T>();
  for (const auto& [E, rows_unit, part] : parts) {
    if (E->size(0) == 0) continue;
    Tensor product = at::mm(E->t(), *rows_unit);  // C x D
    const T* prod = product.const_data_ptr<T>();
    const T* scale = part->neg_scale.template const_data_ptr<T>();
    at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        for (int64_t d = 0; d < D; ++d) ug[c * D + d] += scale[c] * prod[c * D + d];
    });
    const T* unit = rows_unit->template const_data_ptr<T>();
    for (int64_t i = 0; i < rows_unit->size(0); ++i) {  // serial: rows of one class collide
      const T g = positive_grad(*part, i);
      T* target = ug + part->labels[i] * D;
      for (int64_t d = 0; d < D; ++d) target[d] += g * unit[i * D + d];
    }
  }
  return normalize_backward<T>(proxies_unit, proxy_norms, unit_grad);
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor, Tensor> fused_loss(const Tensor& x, const Tensor& labels, const Tensor& proxies,
                                                      const Tensor& synthetic, const Tensor& synthetic_labels,
                                                      double alpha, double margin, double lam, bool compute_grad,
                                                      bool synthetic_grad) {
  const int64_t B = x.size(0), m = synthetic.size(0), C = proxies.size(0), D = x.size(1);
  const int64_t N = B + m;

  Tensor rows_unit = at::empty({N, D}, x.options());
  Tensor row_norms = at::empty({N}, x.options());
  Tensor real_unit = rows_unit.narrow(0, 0, B), synthetic_unit = rows_unit.narrow(0, B, m);
  Tensor real_norms = row_norms.narrow(0, 0, B), synthetic_norms = row_norms.narrow(0, B, m);
  normalize_rows_into<T>(x, real_unit, real_norms);
  normalize_rows_into<T>(synthetic, synthetic_unit, synthetic_norms);
  Tensor proxies_unit = at::empty_like(proxies);
  Tensor proxy_norms = at::empty({C}, x.options());
  normalize_rows_into<T>(proxies, proxies_unit, proxy_norms);

  Tensor S = at::mm(rows_unit, proxies_unit.t());  // N x C, becomes E in place
  T* s = S.data_ptr<T>();
  PartState<T> real = make_part<T>(0, B, labels, C, x);
  PartState<T> syn = make_part<T>(B, N, synthetic_labels, C, x);
  reduce_columns(s, C, alpha, real);
  reduce_columns(s, C, alpha, syn);
  const double loss = finish_part(real, C, alpha, margin, 1.0) + finish_part(syn, C, alpha, margin, lam);

  Tensor empty = at::empty({0}, x.options());
  Tensor grad_x = empty, grad_proxies = empty, grad_synthetic = empty;
  if (compute_grad) {
    Tensor E_real = S.narrow(0, 0, B), E_syn = S.narrow(0, B, m);
    grad_x = rows_grad(E_real, proxies_unit, real, real_unit, real_norms);
    grad_proxies = proxies_grad<T>(proxies_unit, proxy_norms,
                                   {{&E_real, &real_unit, &real}, {&E_syn, &synthetic_unit, &syn}});
    if (synthetic_grad) grad_synthetic = rows_grad(E_syn, proxies_unit, syn, synthetic_unit, synthetic_norms);
  }
  return {at::scalar_tensor(loss, x.options()), grad_x, grad_proxies, grad_synthetic};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> proxy_anchor_fused_cpu(const Tensor& x, const Tensor& labels,
                                                                  const Tensor& proxies, const Tensor& synthetic,
                                                                  const Tensor& synthetic_labels, double alpha,
                                                                  double margin, double lam, bool compute_grad,
                                                                  bool synthetic_grad) {
  TORCH_CHECK(x.dim() == 2 && proxies.dim() == 2 && synthetic.dim() == 2, "x, proxies, synthetic must be 2-D");
  TORCH_CHECK(proxies.size(1) == x.size(1) && synthetic.size(1) == x.size(1), "feature sizes differ");
  TORCH_CHECK(x.scalar_type() == proxies.scalar_type() && x.scalar_type() == synthetic.scalar_type(),
              "x, proxies and synthetic must share one dtype");
  TORCH_CHECK(labels.scalar_type() == at::kLong && synthetic_labels.scalar_type() == at::kLong, "labels must be int64");
  TORCH_CHECK(labels.numel() == x.size(0) && synthetic_labels.numel() == synthetic.size(0), "one label per row");
  TORCH_CHECK(x.is_contiguous() && proxies.is_contiguous() && synthetic.is_contiguous() && labels.is_contiguous() &&
                  synthetic_labels.is_contiguous(),
              "inputs must be contiguous");
  // Labels index per-column arrays: out-of-range values would write out of bounds.
  check_labels_in_range(labels, proxies.size(0), "labels");
  check_labels_in_range(synthetic_labels, proxies.size(0), "synthetic_labels");
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
