// The CUDA passes of the fused Proxy-Anchor loss (cuda/proxy_anchor_kernels.cuh,
// cuda/row_normalize.cuh) under the emulation, stage by stage against the CPU
// kernels (normalize.h, cpu/proxy_anchor_kernels.h).
//
// The test runs the GPU pipeline of cuda/proxy_anchor_cuda.cu with the launch
// decisions of cuda/proxy_anchor_launch.h, the matrix products done by plain
// loops standing in for cuBLAS: unit rows and proxies, the classes among the
// sorted labels, then per chunk of classes S_c = [x̂; ẑ] P̂_c^T, the column
// extrema (large alpha), the exponentiation, the finishing kernel, the
// gradient kernel; G P̂ and G^T [x̂; ẑ], and the normalisation backward. The
// proxies may be a shard of the classes (global labels, rows of other classes
// their negatives). Each stage is compared with the CPU kernel run on the
// same input as the emulated one, so every bound is the rounding of that
// stage alone.
#include "cuda_emulation/emulation.h"

#include <algorithm>
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

// Which classes the op's proxies are, and how they are chunked: the global
// classes [first, first + count) of all p.C, in chunks of `width`.
struct Shard {
  int64_t first, count, width;
};

Shard whole(const Problem& p) { return {0, p.C, p.C}; }

// The columns [first, first + count) of an N x C matrix.
template <typename T>
std::vector<T> columns(const std::vector<T>& a, int64_t N, int64_t C, int64_t first, int64_t count) {
  std::vector<T> out(N * count);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < count; ++c) out[i * count + c] = a[i * C + first + c];
  return out;
}

// What the passes give for the shard of a similarity matrix S (N x C, all classes).
template <typename T>
struct PassResult {
  T loss;
  std::vector<T> G;  // dL/dS of the shard's classes, N x count
};

// The launches of fused_loss and chunk_passes in cuda/proxy_anchor_cuda.cu:
// the classes among the sorted labels, then per chunk the column passes on S_c in place.
template <typename T>
PassResult<T> gpu_passes(const std::vector<T>& S_all, const Problem& p, const Shard& shard,
                         long long classes_with_positive[2]) {
  const int64_t B = p.B, m = p.m, N = B + m;
  std::vector<int64_t> sorted_labels = p.labels, sorted_synthetic = p.synthetic_labels;  // at::sort
  std::sort(sorted_labels.begin(), sorted_labels.end());
  std::sort(sorted_synthetic.begin(), sorted_synthetic.end());
  int label_error = 0;
  launch(see::cuda::count_classes_launch(), see::cuda::count_classes_kernel,
         see::cuda::RowParts{{0, B}, {B, m}, {sorted_labels.data(), sorted_synthetic.data()}}, p.C,
         classes_with_positive, &label_error);
  const see::cuda::RowParts parts{{0, B}, {B, m}, {p.labels.data(), p.synthetic_labels.data()}};
  std::vector<T> pos_exp(N, T(0)), G(N * shard.count);
  double loss_sum = 0.0;
  for (int64_t begin = 0; begin < shard.count && N > 0; begin += shard.width) {
    const int64_t C = std::min(shard.width, shard.count - begin), first_class = shard.first + begin;
    std::vector<T> S = columns(S_all, N, p.C, first_class, C);
    const int chunks = see::cuda::column_chunks(C, std::max(B, m), kMultiprocessors);
    const bool exact_refs = !see::fixed_ref_is_safe<T>(p.alpha);
    const int64_t part_sums = 2 * static_cast<int64_t>(chunks) * C;
    std::vector<T> sums(2 * part_sums), refs(exact_refs ? 4 * C : 0), scales(4 * C), extrema;
    see::cuda::ColumnPartials<T> partials{sums.data(), sums.data() + part_sums, pos_exp.data(), nullptr, nullptr};
    const T* neg_max = nullptr;
    const T* pos_min = nullptr;
    const see::cuda::LaunchShape shape = see::cuda::column_pass_launch(C, chunks);
    if (exact_refs) {
      extrema.assign(2 * part_sums, T(0));
      launch(shape, see::cuda::column_extrema_kernel<T>, S.data(), C, first_class, parts, extrema.data(),
             extrema.data() + part_sums);
      neg_max = extrema.data();
      pos_min = extrema.data() + part_sums;
      partials.neg_ref = refs.data();
      partials.pos_ref = refs.data() + 2 * C;
    }
    launch(shape, see::cuda::exponentiate_kernel<T>, S.data(), C, first_class, parts, static_cast<T>(p.alpha), neg_max,
           pos_min, partials);
    const see::cuda::FinishArgs<T> finish{C, chunks, partials.neg_sum, partials.pos_sum, partials.neg_ref,
                                          partials.pos_ref, &label_error, classes_with_positive, p.C, p.alpha,
                                          p.margin, p.lam, scales.data(), scales.data() + 2 * C, &loss_sum};
    launch(see::cuda::finish_launch(), see::cuda::finish_columns_kernel<T>, finish);
    launch(see::cuda::loss_gradient_launch(N, C), see::cuda::loss_gradient_kernel<T>, S.data(), C, first_class, parts,
           pos_exp.data(), scales.data(), scales.data() + 2 * C);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < C; ++c) G[i * shard.count + begin + c] = S[i * C + c];
  }
  T loss = T(0);
  launch(see::cuda::write_loss_launch(), see::cuda::write_loss_kernel<T>, &loss_sum, &label_error, &loss);
  return {loss, G};
}

// The CPU kernels as the ATen glue (cpu/proxy_anchor_aten.h) runs them, on S_c^T
// chunk by chunk: the loss and dL/dS (returned as N x count).
template <typename T>
PassResult<T> cpu_passes(const std::vector<T>& S_all, const Problem& p, const Shard& shard,
                         int64_t classes_with_positive[2]) {
  const int64_t B = p.B, N = p.B + p.m;
  std::vector<int64_t> row_labels(p.labels);
  row_labels.insert(row_labels.end(), p.synthetic_labels.begin(), p.synthetic_labels.end());
  const see::cpu::RowsByClass by_class(row_labels.data(), N, shard.first, shard.count, p.C);
  classes_with_positive[0] = see::cpu::classes_present(row_labels.data(), 0, B, p.C);
  classes_with_positive[1] = see::cpu::classes_present(row_labels.data(), B, N, p.C);
  see::cpu::LossProblem<T> problem{nullptr, B, N, nullptr, by_class.rows.data(), static_cast<T>(p.alpha),
                                   static_cast<T>(p.margin), {1.0, p.lam},
                                   {classes_with_positive[0], classes_with_positive[1]}, p.C,
                                   !see::fixed_ref_is_safe<T>(p.alpha)};
  std::vector<T> GT = transpose(columns(S_all, N, p.C, shard.first, shard.count), N, shard.count);
  std::vector<double> storage(4 * shard.width);
  const see::cpu::ColumnTerms terms{{storage.data(), storage.data() + shard.width},
                                    {storage.data() + 2 * shard.width, storage.data() + 3 * shard.width}};
  see::cpu::LossSums sums;
  for (int64_t begin = 0; begin < shard.count; begin += shard.width) {
    const int64_t C = std::min(shard.width, shard.count - begin);
    problem.ST = GT.data() + begin * N;
    problem.positives_begin = by_class.begin.data() + begin;
    see::cpu::loss_proxy_rows(problem, 0, C, true, terms);
    see::cpu::add_terms(problem, terms, C, sums);
  }
  return {static_cast<T>(see::cpu::total_loss(problem, sums)), transpose(GT, shard.count, N)};
}

// The passes on one S, against the CPU's. The exponentials are the same
// function of the same entries and references (fast_exp of alpha (s - ref),
// the references exact maxima and minima), so they agree exactly. The
// per-column sums of positive terms differ by order: the kernel adds in T
// along a thread's rows (at most ceil(rows_per_chunk / 8) terms), then the 8
// row lanes in T, then the row chunks in double; the CPU adds blocks of
// kExpBlock entries in T, then the blocks in double. Relative to the sum:
// delta_sum = gamma_{rows/8 + 8}(T) + gamma_kExpBlock(T) + gamma_{N + chunks}(double).
// The rest is in double: lse = shift + log(sum) moves by delta_sum plus a few
// ulp of |lse|, softplus is 1-Lipschitz, so a column term moves by
// delta_term = delta_sum + 8 u (1 + |lse|max), |lse| <= alpha (2 + margin) +
// log N; the loss  sum_p w_p (sum_c pos_c / |P_p| + sum_c neg_c / C)  by
// delta_term sum_p w_p (count / |P_p| + count / C) plus its own rounding: the
// terms (all >= 0) each divided by its count (a rounding on either side) and
// added in another order, and per chunk of classes a block sum, a product and
// an addition to the running sum (a few roundings of partial sums of the
// loss): within gamma_{count + 4 class chunks + 2}(double) of the loss.
// A gradient scale alpha w sigmoid(lse) / sum moves by 2 delta_term + 8 u
// relative, then rounds to T, and G = exp * scale rounds once more: relative
// 2 delta_term + 8 u + 2 u_T, plus an absolute denorm_min per rounding where
// exponentials of large alpha fall below the normal range.
template <typename T>
PassResult<T> compare_passes(const std::vector<T>& S_all, const Problem& p, const Shard& shard, const char* what) {
  const int64_t N = p.B + p.m;
  long long gpu_classes[2] = {-1, -1};
  int64_t classes[2];
  const PassResult<T> gpu = gpu_passes(S_all, p, shard, gpu_classes);
  const PassResult<T> cpu = cpu_passes(S_all, p, shard, classes);
  const std::string name = std::string(what) + ", " + see::testing::dtype_name<T>();
  check(gpu_classes[0] == classes[0] && gpu_classes[1] == classes[1],
        (name + ": the classes among the labels").c_str());
  // The fewest row chunks (the most rows per lane) of any chunk of classes: the widest.
  const int chunks = see::cuda::column_chunks(std::max<int64_t>(1, std::min(shard.width, shard.count)),
                                              std::max(p.B, p.m), kMultiprocessors);
  const double class_chunks = std::ceil(double(shard.count) / double(shard.width));
  const double u = unit_roundoff<double>();
  const double rows_per_lane = std::ceil(std::ceil(double(std::max(p.B, p.m)) / chunks) / see::cuda::kRowLanes);
  const double delta_sum = gamma<T>(rows_per_lane + see::cuda::kRowLanes) +
                           gamma<T>(double(see::cpu::kExpBlock)) + gamma<double>(double(N + chunks));
  const double lse_max = p.alpha * (2 + p.margin) + std::log(double(N) + 1);
  const double delta_term = delta_sum + 8 * u * (1 + lse_max);
  double loss_tol =
      (gamma<double>(double(shard.count) + 4 * class_chunks + 2) + 2 * unit_roundoff<T>()) * std::fabs(double(cpu.loss));
  for (int part = 0; part < 2; ++part)
    if (classes[part] > 0)
      loss_tol += (part == 0 ? 1.0 : p.lam) * (double(shard.count) / classes[part] + double(shard.count) / p.C) *
                  delta_term;
  check_close(gpu.loss, cpu.loss, loss_tol, name.c_str());
  const double g_rel = 2 * delta_term + 8 * u + 2 * unit_roundoff<T>();
  const double tiny = 4 * double(std::numeric_limits<T>::denorm_min());
  double worst = 0.0;  // the largest |diff| over its bound
  for (int64_t e = 0; e < N * shard.count; ++e) {
    const double diff = std::fabs(double(gpu.G[e]) - double(cpu.G[e]));
    worst = std::max(worst, std::isnan(diff) ? diff : diff / (g_rel * std::fabs(double(cpu.G[e])) + tiny));
  }
  if (N * shard.count > 0) check_close(worst, 0.0, 1.0, (name + ": dL/dS, diff / bound").c_str());
  return gpu;
}

// Unit rows (real, then synthetic) and unit proxies of all classes, by the kernels.
template <typename T>
struct UnitInputs {
  std::vector<T> rows_unit, row_norms, proxies_unit, proxy_norms;
};

template <typename T>
UnitInputs<T> unit_inputs(const Problem& p) {
  const int64_t N = p.B + p.m;
  std::vector<T> rows_raw = as<T>(p.x);
  const std::vector<T> synthetic_raw = as<T>(p.synthetic);
  rows_raw.insert(rows_raw.end(), synthetic_raw.begin(), synthetic_raw.end());
  UnitInputs<T> in;
  // One launch for x and synthetic (the glue makes two), one for all proxies (the glue one per chunk):
  // each row is normalised alone, so the split does not matter.
  normalize_rows(rows_raw, N, p.D, in.rows_unit, in.row_norms);
  normalize_rows(as<T>(p.proxies), p.C, p.D, in.proxies_unit, in.proxy_norms);
  return in;
}

// The whole GPU pipeline, each stage against the CPU kernel on its input.
template <typename T>
void test_pipeline(const Problem& p, const Shard& shard, const char* what) {
  const int64_t N = p.B + p.m, D = p.D;
  const UnitInputs<T> in = unit_inputs<T>(p);
  const std::vector<T> S = matmul_abt(in.rows_unit.data(), in.proxies_unit.data(), N, p.C, D);
  const PassResult<T> gpu = compare_passes(S, p, shard, what);
  const std::vector<T> shard_unit(in.proxies_unit.begin() + shard.first * D,
                                  in.proxies_unit.begin() + (shard.first + shard.count) * D);
  const std::vector<T> shard_norms(in.proxy_norms.begin() + shard.first,
                                   in.proxy_norms.begin() + shard.first + shard.count);
  const std::vector<T> grad_rows_unit =
      matmul_abt(gpu.G.data(), transpose(shard_unit, shard.count, D).data(), N, D, shard.count);
  const std::vector<T> grad_proxies_unit =
      matmul_abt(transpose(gpu.G, N, shard.count).data(), transpose(in.rows_unit, N, D).data(), shard.count, D, N);
  normalize_backward(in.rows_unit, in.row_norms, grad_rows_unit, N, D);
  normalize_backward(shard_unit, shard_norms, grad_proxies_unit, shard.count, D);
}

// Labels outside [0, C): memory-safe (under AddressSanitizer in the sanitizer
// build), and NaN for the loss, every entry of dL/dS and so every gradient,
// whichever classes the shard holds (none, too).
template <typename T>
void test_out_of_range_labels(Problem p, const Shard& shard, bool real_label) {
  if (real_label)
    p.labels[1] = -1;
  else if (p.m > 0)
    p.synthetic_labels.back() = p.C;
  else
    p.labels.back() = std::numeric_limits<int64_t>::min();
  const int64_t N = p.B + p.m, D = p.D;
  const UnitInputs<T> in = unit_inputs<T>(p);
  long long classes[2];
  const PassResult<T> gpu = gpu_passes(matmul_abt(in.rows_unit.data(), in.proxies_unit.data(), N, p.C, D), p,
                                       shard, classes);
  check(std::isnan(gpu.loss), "an out-of-range label makes the loss NaN");
  bool all_nan = true;
  for (T g : gpu.G) all_nan &= std::isnan(g);
  check(all_nan, "an out-of-range label makes every entry of dL/dS NaN");
  const std::vector<T> shard_unit(in.proxies_unit.begin() + shard.first * D,
                                  in.proxies_unit.begin() + (shard.first + shard.count) * D);
  const std::vector<T> grad_rows_unit =
      matmul_abt(gpu.G.data(), transpose(shard_unit, shard.count, D).data(), N, D, shard.count);
  std::vector<T> grad_rows(N * D);
  launch(see::cuda::row_norm_launch(N), see::cuda::normalize_rows_backward_kernel<T>, in.rows_unit.data(),
         in.row_norms.data(), grad_rows_unit.data(), N, D, grad_rows.data());
  if (shard.count > 0) {  // without classes the glue makes them NaN itself
    for (T g : grad_rows) all_nan &= std::isnan(g);
    check(all_nan, "an out-of-range label makes the gradient w.r.t. the rows NaN");
  }
}

template <typename T>
void run_all() {
  std::mt19937_64 rng(sizeof(T) == 4 ? 5 : 6);
  // 2 column tiles x 4 row chunks x 2 parts; a class without positives; fixed references.
  const Problem tiles = make_problem(100, 70, 40, 33, 32.0, rng);
  test_pipeline<T>(tiles, whole(tiles), "loss: several row chunks and tiles, fixed references");
  // Chunks of classes: 7 and the rest; of one class; a shard at an offset, in chunks,
  // whose rows of other classes are its negatives.
  test_pipeline<T>(tiles, {0, 40, 7}, "loss: chunks of 7 classes");
  test_pipeline<T>(tiles, {0, 40, 1}, "loss: chunks of one class");
  test_pipeline<T>(tiles, {13, 20, 6}, "loss: a shard of classes [13, 33) in chunks of 6");
  test_pipeline<T>(tiles, {39, 1, 4}, "loss: a shard of the class without positives");
  test_pipeline<T>(tiles, {5, 0, 4}, "loss: a shard without classes");
  // Large alpha: the exact references (column extrema) in both dtypes, whole and in chunks.
  const Problem large = make_problem(60, 24, 35, 20, 400.0, rng);
  test_pipeline<T>(large, whole(large), "loss: exact references (alpha 400)");
  test_pipeline<T>(large, {3, 30, 8}, "loss: exact references, a shard in chunks");
  // One class, no synthetic rows (the second part has no rows at all).
  const Problem one = make_problem(40, 0, 1, 17, 32.0, rng);
  test_pipeline<T>(one, whole(one), "loss: C = 1, no synthetic rows");
  // D = 2048: 64 coordinates per lane in the normalisations.
  const Problem wide = make_problem(9, 3, 5, 2048, 32.0, rng);
  test_pipeline<T>(wide, whole(wide), "loss: D = 2048");
  for (const double alpha : {32.0, 400.0}) {
    const Problem bad = make_problem(30, 10, 12, 12, alpha, rng);
    for (const bool real_label : {true, false}) {
      test_out_of_range_labels<T>(bad, whole(bad), real_label);
      test_out_of_range_labels<T>(bad, {4, 6, 4}, real_label);
      test_out_of_range_labels<T>(bad, {4, 0, 4}, real_label);
    }
  }
}

}  // namespace

int main() {
  run_all<double>();
  run_all<float>();
  if (see::testing::failures == 0) std::printf("emulated Proxy-Anchor kernels: all tests passed\n");
  return see::testing::failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
