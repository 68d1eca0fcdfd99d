// The CUDA passes of the fused Proxy-Anchor loss (cuda/proxy_anchor_kernels.cuh,
// cuda/row_normalize.cuh) under the emulation, stage by stage against the CPU
// kernels (normalize.h, cpu/proxy_anchor_kernels.h).
//
// The test runs the GPU pipeline of cuda/proxy_anchor_cuda.cu with the launch
// decisions of cuda/proxy_anchor_launch.h, the matrix products done by plain
// loops standing in for cuBLAS: unit rows and proxies, S = [x̂; ẑ] P̂^T, the
// column extrema (large alpha), the exponentiation, the finishing kernel, the
// gradient kernel, G P̂ and G^T [x̂; ẑ], and the normalisation backward. Each
// stage is compared with the CPU kernel run on the same input as the emulated
// one, so every bound is the rounding of that stage alone.
#include "cuda_emulation/emulation.h"

#include <cstdio>
#include <string>
#include <vector>

#include "cpu/proxy_anchor_kernels.h"
#include "cuda/proxy_anchor_kernels.cuh"
#include "cuda/proxy_anchor_launch.h"
#include "cuda/row_normalize.cuh"
#include "emulated_test_support.h"
#include "cpu/normalize.h"

namespace {

using see::emulation::launch;
using see::testing::check;
using see::testing::check_close;
using see::testing::gamma;
using see::testing::unit_roundoff;

constexpr int kMultiprocessors = 132;  // the device the chunk count is planned for (an H100)

struct Problem {
  int64_t B, m, C, D;
  double alpha, margin, lam;
  std::vector<double> x, synthetic, proxies;
  std::vector<int64_t> labels, synthetic_labels;
};

Problem make_problem(int64_t B, int64_t m, int64_t C, int64_t D, double alpha, std::mt19937_64& rng) {
  Problem p{B, m, C, D, alpha, 0.1, 0.3,
            see::testing::normal_vector<double>(B * D, rng, 2.0),
            see::testing::normal_vector<double>(m * D, rng, 0.5),
            see::testing::normal_vector<double>(C * D, rng),
            std::vector<int64_t>(B), std::vector<int64_t>(m)};
  // Labels over all but the last class (a class without positives), rows
  // pulled towards their proxy so that cosines spread over [-1, 1].
  std::uniform_int_distribution<int64_t> label(0, C > 1 ? C - 2 : 0);
  for (auto* part : {&p.labels, &p.synthetic_labels})
    for (auto& y : *part) y = label(rng);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t d = 0; d < D; ++d) p.x[i * D + d] += 3.0 * p.proxies[p.labels[i] * D + d];
  return p;
}

template <typename T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Unit rows by the kernel, each row compared with normalize_row. Per
// implementation the squared norm is a sum of D terms, within gamma_D of its
// value in any order; the norm (sqrt of it plus eps) then within gamma_{D+1}
// relative, each unit entry within gamma_{D+2} relative; the two within twice that.
template <typename T>
void normalize_rows(const std::vector<T>& in, int64_t rows, int64_t D, std::vector<T>& unit, std::vector<T>& norms) {
  unit.assign(rows * D, T(0));
  norms.assign(rows, T(0));
  if (rows == 0) return;
  launch(see::cuda::row_norm_launch(rows), see::cuda::normalize_rows_kernel<T>, in.data(), rows, D, unit.data(),
         norms.data());
  std::vector<T> want(D);
  for (int64_t i = 0; i < rows; ++i) {
    const T norm = see::normalize_row(in.data() + i * D, want.data(), D);
    check_close(norms[i], norm, 2 * gamma<T>(D + 1) * norm, "row norm kernel against normalize_row");
    double worst = 0.0;
    for (int64_t d = 0; d < D; ++d)
      worst = std::max(worst, std::fabs(double(unit[i * D + d]) - double(want[d])) /
                                  (std::fabs(double(want[d])) + 1e-300));
    check_close(worst, 0.0, 2 * gamma<T>(D + 2), "unit rows kernel against normalize_row (relative)");
  }
}

// Gradient w.r.t. the raw rows by the kernel against normalize_row_backward.
// (g - u (u.g)) / norm: u.g is a sum of D terms within gamma_D |u| |g| =
// gamma_D |g| in any order, and each entry adds a few roundings of
// |g_d| + |u_d| |u.g| <= 2 |g|; the two implementations within 2 gamma_{D+4} |g| / norm.
template <typename T>
std::vector<T> normalize_backward(const std::vector<T>& unit, const std::vector<T>& norms,
                                  const std::vector<T>& grad_unit, int64_t rows, int64_t D) {
  std::vector<T> grad(rows * D);
  if (rows == 0) return grad;
  launch(see::cuda::row_norm_launch(rows), see::cuda::normalize_rows_backward_kernel<T>, unit.data(), norms.data(),
         grad_unit.data(), rows, D, grad.data());
  std::vector<T> want(D);
  for (int64_t i = 0; i < rows; ++i) {
    see::normalize_row_backward(unit.data() + i * D, norms[i], grad_unit.data() + i * D, want.data(), D);
    double g_sq = 0.0;
    for (int64_t d = 0; d < D; ++d) g_sq += double(grad_unit[i * D + d]) * double(grad_unit[i * D + d]);
    const double tol = 2 * gamma<T>(D + 4) * std::sqrt(g_sq) / double(norms[i]);
    double worst = 0.0;
    for (int64_t d = 0; d < D; ++d) worst = std::max(worst, std::fabs(double(grad[i * D + d]) - double(want[d])));
    if (!std::isnan(tol)) check_close(worst, 0.0, tol, "normalisation backward kernel against normalize_row_backward");
  }
  return grad;
}

// out (rows x cols) = a (rows x K) b^T (cols x K), or a^T b with transpose_a: the cuBLAS products.
template <typename T>
std::vector<T> matmul_abt(const T* a, const T* b, int64_t rows, int64_t cols, int64_t K) {
  std::vector<T> out(rows * cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      T s = T(0);
      for (int64_t k = 0; k < K; ++k) s += a[i * K + k] * b[j * K + k];
      out[i * cols + j] = s;
    }
  return out;
}

template <typename T>
std::vector<T> transpose(const std::vector<T>& a, int64_t rows, int64_t cols) {
  std::vector<T> t(rows * cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

// What the GPU passes give for a similarity matrix S (N x C).
template <typename T>
struct PassResult {
  T loss;
  std::vector<T> G;  // dL/dS, N x C
};

// The launches of fused_loss in cuda/proxy_anchor_cuda.cu, on S in place.
template <typename T>
PassResult<T> gpu_passes(std::vector<T> S, const Problem& p) {
  const int64_t B = p.B, m = p.m, C = p.C, N = B + m;
  const see::cuda::RowParts parts{{0, B}, {B, m}, {p.labels.data(), p.synthetic_labels.data()}};
  const int chunks = see::cuda::column_chunks(C, std::max(B, m), kMultiprocessors);
  const bool exact_refs = !see::fixed_ref_is_safe<T>(p.alpha);
  const int64_t part_sums = 2 * static_cast<int64_t>(chunks) * C;
  std::vector<T> sums(2 * part_sums), refs(exact_refs ? 4 * C : 0), pos_exp(N, T(0)), scales(4 * C), extrema;
  std::vector<int> counts(part_sums);
  int label_error = C == 0 && N > 0 ? 1 : 0;
  see::cuda::ColumnPartials<T> partials{sums.data(), sums.data() + part_sums, counts.data(), pos_exp.data(),
                                        nullptr, nullptr, &label_error};
  const T* neg_max = nullptr;
  const T* pos_min = nullptr;
  const see::cuda::LaunchShape shape = see::cuda::column_pass_launch(C, chunks);
  if (exact_refs) {
    extrema.assign(2 * part_sums, T(0));
    launch(shape, see::cuda::column_extrema_kernel<T>, S.data(), C, parts, extrema.data(), extrema.data() + part_sums);
    neg_max = extrema.data();
    pos_min = extrema.data() + part_sums;
    partials.neg_ref = refs.data();
    partials.pos_ref = refs.data() + 2 * C;
  }
  launch(shape, see::cuda::exponentiate_kernel<T>, S.data(), C, parts, static_cast<T>(p.alpha), neg_max, pos_min,
         partials);
  T loss = T(0);
  const see::cuda::FinishArgs<T> finish{C, chunks, partials.neg_sum, partials.pos_sum, partials.pos_count,
                                        partials.neg_ref, partials.pos_ref, &label_error, p.alpha, p.margin, p.lam,
                                        scales.data(), scales.data() + 2 * C, &loss};
  launch(see::cuda::finish_launch(), see::cuda::finish_columns_kernel<T>, finish);
  launch(see::cuda::loss_gradient_launch(N, C), see::cuda::loss_gradient_kernel<T>, S.data(), C, parts,
         pos_exp.data(), scales.data(), scales.data() + 2 * C);
  return {loss, S};
}

// The CPU kernels on S^T: the loss and dL/dS (returned as N x C).
template <typename T>
PassResult<T> cpu_passes(const std::vector<T>& S, const Problem& p, int64_t classes_with_positive[2]) {
  const int64_t B = p.B, N = p.B + p.m, C = p.C;
  std::vector<int64_t> row_labels(p.labels);
  row_labels.insert(row_labels.end(), p.synthetic_labels.begin(), p.synthetic_labels.end());
  std::vector<int64_t> begin(C + 1, 0), rows(N);  // rows by class, ascending
  for (int64_t y : row_labels) ++begin[y + 1];
  for (int64_t c = 0; c < C; ++c) begin[c + 1] += begin[c];
  std::vector<int64_t> next(begin.begin(), begin.end() - 1);
  for (int64_t i = 0; i < N; ++i) rows[next[row_labels[i]]++] = i;
  for (int part = 0; part < 2; ++part) {
    classes_with_positive[part] = 0;
    for (int64_t c = 0; c < C; ++c) {
      bool has = false;
      for (int64_t q = begin[c]; q < begin[c + 1]; ++q) has |= (rows[q] >= B) == (part == 1);
      classes_with_positive[part] += has;
    }
  }
  std::vector<T> ST = transpose(S, N, C);
  const see::cpu::LossProblem<T> problem{ST.data(), C, B, N, begin.data(), rows.data(), static_cast<T>(p.alpha),
                                         static_cast<T>(p.margin), {1.0, p.lam},
                                         {classes_with_positive[0], classes_with_positive[1]},
                                         !see::fixed_ref_is_safe<T>(p.alpha)};
  std::vector<double> storage(4 * C);
  const see::cpu::ColumnTerms terms{{storage.data(), storage.data() + C},
                                    {storage.data() + 2 * C, storage.data() + 3 * C}};
  for (int64_t c = 0; c < C; ++c) see::cpu::loss_proxy_row(problem, c, true, terms);
  return {static_cast<T>(see::cpu::total_loss(problem, terms)), transpose(ST, C, N)};
}

// The passes on one S, against the CPU's. The exponentials are the same
// function of the same entries and references (fast_exp of alpha (s - ref),
// the references exact maxima and minima), so they agree exactly. The
// per-column sums of positive terms differ by order: the kernel adds in T
// along a thread's rows (at most ceil(rows_per_chunk / 8) terms), then the 8
// row lanes in T, then the chunks in double; the CPU adds in double. Relative
// to the sum: delta_sum = gamma_{rows/8 + 8}(T) + gamma_{N + chunks}(double).
// The rest is in double: lse = shift + log(sum) moves by delta_sum plus a few
// ulp of |lse|, softplus is 1-Lipschitz, so a column term moves by
// delta_term = delta_sum + 8 u (1 + |lse|max), |lse| <= alpha (2 + margin) +
// log N; the loss  sum_p w_p (sum_c pos_c / |P_p| + sum_c neg_c / C)  by
// delta_term sum_p w_p (C / |P_p| + 1) plus gamma_C of itself. A gradient
// scale alpha w sigmoid(lse) / sum moves by 2 delta_term + 8 u relative,
// then rounds to T, and G = exp * scale rounds once more: relative
// 2 delta_term + 8 u + 2 u_T, plus an absolute denorm_min per rounding where
// exponentials of large alpha fall below the normal range.
template <typename T>
PassResult<T> compare_passes(const std::vector<T>& S, const Problem& p, const char* what) {
  const int64_t N = p.B + p.m, C = p.C;
  int64_t classes[2];
  const PassResult<T> gpu = gpu_passes(S, p);
  const PassResult<T> cpu = cpu_passes(S, p, classes);
  const int chunks = see::cuda::column_chunks(C, std::max(p.B, p.m), kMultiprocessors);
  const double u = unit_roundoff<double>();
  const double rows_per_lane = std::ceil(std::ceil(double(std::max(p.B, p.m)) / chunks) / see::cuda::kRowLanes);
  const double delta_sum = gamma<T>(rows_per_lane + see::cuda::kRowLanes) + gamma<double>(double(N + chunks));
  const double lse_max = p.alpha * (2 + p.margin) + std::log(double(N) + 1);
  const double delta_term = delta_sum + 8 * u * (1 + lse_max);
  double loss_tol = (gamma<double>(double(C)) + 2 * unit_roundoff<T>()) * std::fabs(double(cpu.loss));
  for (int part = 0; part < 2; ++part)
    if (classes[part] > 0) loss_tol += (part == 0 ? 1.0 : p.lam) * (double(C) / classes[part] + 1) * delta_term;
  const std::string name = std::string(what) + ", " + see::testing::dtype_name<T>();
  check_close(gpu.loss, cpu.loss, loss_tol, name.c_str());
  const double g_rel = 2 * delta_term + 8 * u + 2 * unit_roundoff<T>();
  const double tiny = 4 * double(std::numeric_limits<T>::denorm_min());
  double worst = 0.0;  // the largest |diff| over its bound
  for (int64_t e = 0; e < N * C; ++e) {
    const double diff = std::fabs(double(gpu.G[e]) - double(cpu.G[e]));
    worst = std::max(worst, std::isnan(diff) ? diff : diff / (g_rel * std::fabs(double(cpu.G[e])) + tiny));
  }
  if (N * C > 0) check_close(worst, 0.0, 1.0, (name + ": dL/dS, diff / bound").c_str());
  return gpu;
}

// The whole GPU pipeline, each stage against the CPU kernel on its input.
template <typename T>
void test_pipeline(const Problem& p, const char* what) {
  const int64_t B = p.B, m = p.m, C = p.C, D = p.D, N = B + m;
  std::vector<T> rows_raw = as<T>(p.x);
  const std::vector<T> synthetic_raw = as<T>(p.synthetic);
  rows_raw.insert(rows_raw.end(), synthetic_raw.begin(), synthetic_raw.end());
  std::vector<T> rows_unit, row_norms, proxies_unit, proxy_norms;
  normalize_rows(rows_raw, N, D, rows_unit, row_norms);  // one launch for x and synthetic (the glue makes two)
  normalize_rows(as<T>(p.proxies), C, D, proxies_unit, proxy_norms);
  const std::vector<T> S = matmul_abt(rows_unit.data(), proxies_unit.data(), N, C, D);
  const PassResult<T> gpu = compare_passes(S, p, what);
  const std::vector<T> grad_rows_unit = matmul_abt(gpu.G.data(), transpose(proxies_unit, C, D).data(), N, D, C);
  const std::vector<T> grad_proxies_unit =
      matmul_abt(transpose(gpu.G, N, C).data(), transpose(rows_unit, N, D).data(), C, D, N);
  normalize_backward(rows_unit, row_norms, grad_rows_unit, N, D);
  normalize_backward(proxies_unit, proxy_norms, grad_proxies_unit, C, D);
}

// Labels outside [0, C): memory-safe (under AddressSanitizer in the sanitizer
// build), and NaN for the loss, every entry of dL/dS and so every gradient.
template <typename T>
void test_out_of_range_labels(Problem p) {
  p.labels[1] = -1;
  if (p.m > 0) p.synthetic_labels[p.m - 1] = p.C;
  const int64_t N = p.B + p.m, C = p.C, D = p.D;
  std::vector<T> rows_raw = as<T>(p.x), rows_unit, row_norms, proxies_unit, proxy_norms;
  const std::vector<T> synthetic_raw = as<T>(p.synthetic);
  rows_raw.insert(rows_raw.end(), synthetic_raw.begin(), synthetic_raw.end());
  normalize_rows(rows_raw, N, D, rows_unit, row_norms);
  normalize_rows(as<T>(p.proxies), C, D, proxies_unit, proxy_norms);
  const PassResult<T> gpu = gpu_passes(matmul_abt(rows_unit.data(), proxies_unit.data(), N, C, D), p);
  check(std::isnan(gpu.loss), "an out-of-range label makes the loss NaN");
  bool all_nan = true;
  for (T g : gpu.G) all_nan &= std::isnan(g);
  check(all_nan, "an out-of-range label makes every entry of dL/dS NaN");
  const std::vector<T> grad_rows_unit = matmul_abt(gpu.G.data(), transpose(proxies_unit, C, D).data(), N, D, C);
  std::vector<T> grad_rows(N * D);
  launch(see::cuda::row_norm_launch(N), see::cuda::normalize_rows_backward_kernel<T>, rows_unit.data(),
         row_norms.data(), grad_rows_unit.data(), N, D, grad_rows.data());
  for (T g : grad_rows) all_nan &= std::isnan(g);
  check(all_nan, "an out-of-range label makes the gradient w.r.t. the rows NaN");
}

template <typename T>
void run_all() {
  std::mt19937_64 rng(sizeof(T) == 4 ? 5 : 6);
  // 2 column tiles x 4 row chunks x 2 parts; a class without positives; fixed references.
  test_pipeline<T>(make_problem(100, 70, 40, 33, 32.0, rng), "loss: several chunks and tiles, fixed references");
  // Large alpha: the exact references (column extrema) in both dtypes.
  test_pipeline<T>(make_problem(60, 24, 35, 20, 400.0, rng), "loss: exact references (alpha 400)");
  // One class, no synthetic rows (the second part has no rows at all).
  test_pipeline<T>(make_problem(40, 0, 1, 17, 32.0, rng), "loss: C = 1, no synthetic rows");
  // D = 2048: 64 coordinates per lane in the normalisations.
  test_pipeline<T>(make_problem(9, 3, 5, 2048, 32.0, rng), "loss: D = 2048");
  test_out_of_range_labels<T>(make_problem(30, 10, 6, 12, 32.0, rng));
  test_out_of_range_labels<T>(make_problem(30, 10, 6, 12, 400.0, rng));
}

}  // namespace

int main() {
  run_all<double>();
  run_all<float>();
  if (see::testing::failures == 0) std::printf("emulated Proxy-Anchor kernels: all tests passed\n");
  return see::testing::failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
