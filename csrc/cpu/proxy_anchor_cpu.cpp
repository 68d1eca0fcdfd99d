// CPU kernel of the fused Proxy-Anchor loss with synthetic rows.
//
// One similarity matrix, stored transposed, S^T = P̂ [x̂; ẑ]^T (C x N), is formed
// and, proxy by proxy, turned in place into (dL/dS)^T while the per-proxy sums
// are taken (proxy_anchor_kernels.h). The gradients are then three products:
// dL/dx̂ = G_real P̂, dL/dP̂ = G^T [x̂; ẑ] over all rows at once, and
// dL/dẑ = G_syn P̂ when asked. Peak extra memory: the one C x N matrix.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../normalize.h"
#include "../op_checks.h"
#include "proxy_anchor_kernels.h"

namespace see {
namespace cpu {
namespace {

using at::Tensor;

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

// The rows of each class, grouped by label and ascending within a class
// (a counting sort): offsets (C + 1) and row indices (N).
struct RowsByClass {
  std::vector<int64_t> begin, rows;
  RowsByClass(const int64_t* labels, int64_t N, int64_t C) : begin(C + 1, 0), rows(N) {
    for (int64_t i = 0; i < N; ++i) ++begin[labels[i] + 1];
    for (int64_t c = 0; c < C; ++c) begin[c + 1] += begin[c];
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t i = 0; i < N; ++i) rows[next[labels[i]]++] = i;
  }
  // Classes with a row in [r0, r1).
  int64_t classes_in(int64_t r0, int64_t r1, int64_t C) const {
    int64_t count = 0;
    for (int64_t c = 0; c < C; ++c) {
      const auto first = std::lower_bound(rows.begin() + begin[c], rows.begin() + begin[c + 1], r0);
      count += first != rows.begin() + begin[c + 1] && *first < r1;
    }
    return count;
  }
};

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
  Tensor row_labels = at::cat({labels, synthetic_labels});
  const RowsByClass by_class(row_labels.const_data_ptr<int64_t>(), N, C);

  Tensor ST = at::mm(proxies_unit, rows_unit.t());  // C x N, becomes (dL/dS)^T in place
  LossProblem<T> problem{ST.data_ptr<T>(), C, B, N, by_class.begin.data(),
                         by_class.rows.data(), static_cast<T>(alpha), static_cast<T>(margin), {1.0, lam},
                         {by_class.classes_in(0, B, C), by_class.classes_in(B, N, C)}, !fixed_ref_is_safe<T>(alpha)};
  std::vector<double> term_storage(4 * C);
  const ColumnTerms terms{{term_storage.data(), term_storage.data() + C},
                          {term_storage.data() + 2 * C, term_storage.data() + 3 * C}};
  at::parallel_for(0, C, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) loss_proxy_row(problem, c, compute_grad, terms);
  });
  const double loss = total_loss(problem, terms);

  Tensor empty = at::empty({0}, x.options());
  Tensor grad_x = empty, grad_proxies = empty, grad_synthetic = empty;
  if (compute_grad) {
    grad_x = normalize_backward<T>(real_unit, real_norms, at::mm(ST.narrow(1, 0, B).t(), proxies_unit));
    grad_proxies = normalize_backward<T>(proxies_unit, proxy_norms, at::mm(ST, rows_unit));
    if (synthetic_grad)
      grad_synthetic = normalize_backward<T>(synthetic_unit, synthetic_norms, at::mm(ST.narrow(1, B, m).t(), proxies_unit));
  }
  return {at::scalar_tensor(loss, x.options()), grad_x, grad_proxies, grad_synthetic};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> proxy_anchor_fused_cpu(const Tensor& x, const Tensor& labels,
                                                                  const Tensor& proxies, const Tensor& synthetic,
                                                                  const Tensor& synthetic_labels, double alpha,
                                                                  double margin, double lam, bool compute_grad,
                                                                  bool synthetic_grad) {
  check_proxy_anchor_args(x, labels, proxies, synthetic, synthetic_labels);
  // Labels index per-proxy arrays: out-of-range values would write out of bounds.
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
