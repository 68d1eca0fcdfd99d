// Tests of the C++ core on its own: the shared math headers and the CPU loops,
// checked against direct formulas, finite differences and invariants. Built by
// CMakeLists.txt (also under sanitizers) and run by ctest.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "cpu/cholesky_frame.h"
#include "cpu/expansion_kernels.h"
#include "cpu/expansion_scratch.h"
#include "cpu/hot_loops.h"
#include "cpu/proxy_anchor_kernels.h"
#include "cpu/row_selection.h"
#include "cpu/unit_row_expansion.h"
#include "fast_exp.h"
#include "mmd_centers.h"
#include "philox_normal.h"
#include "slerp.h"

namespace {

int failures = 0;

void expect(bool ok, const char* what, double got, double want) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
  }
}

void expect_close(double got, double want, double tol, const char* what) {
  expect(std::fabs(got - want) <= tol, what, got, want);
}

int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));
}

void test_fast_exp() {
  int64_t worst = 0;
  for (float x = -87.0f; x < 88.0f; x += 0.0007f) {
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    worst = std::max(worst, ulp_distance(see::fast_exp(x), want));
  }
  expect(worst <= 2, "fast_exp within 2 ulp of exp", static_cast<double>(worst), 2);
  expect(see::fast_exp(-100.0f) == 0.0f, "fast_exp below the normal range", see::fast_exp(-100.0f), 0);
  expect(see::fast_exp(0.0f) == 1.0f, "fast_exp(0)", see::fast_exp(0.0f), 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  expect(std::isnan(see::fast_exp(nan)), "fast_exp(NaN) is NaN", see::fast_exp(nan), nan);
  expect(std::isnan(see::fast_exp(-nan)), "fast_exp(-NaN) is NaN", see::fast_exp(-nan), nan);
}

void test_mmd_centers() {
  for (int64_t L : {2, 3, 5, 17, 65}) {
    const double n = static_cast<double>(L - 1);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t k = 0; k < L; ++k) {
        double dot = 0;
        for (int64_t j = 0; j < L; ++j) dot += see::mmd_center_entry(i, j, L) * see::mmd_center_entry(k, j, L);
        expect_close(dot, i == k ? 1.0 : -1.0 / n, 1e-13, "simplex Gram matrix");
      }
    expect(see::mmd_center_entry(L - 1, L - 1, L) == 0.0, "last diagonal is 0", 0, 0);
  }
}

struct Expansion {
  int64_t n, D;
  std::vector<double> z, w, noise, frame, z_unit, coef, pass_coef, out, prefix;
  Expansion(int64_t n_, int64_t D_, std::mt19937_64& rng)
      : n(n_), D(D_), z(D), w(D), noise((n - 1) * D), frame((n + 1) * D), z_unit(D), coef((n + 1) * (n + 1)), pass_coef(n + 1), out(n * D), prefix(D) {
    std::normal_distribution<double> normal;
    for (auto* v : {&z, &w, &noise})
      for (auto& e : *v) e = normal(rng);
  }
  see::SourceGeometry<double> run(const std::vector<double>& source) {
    auto geo = see::cpu::build_frame(source.data(), w.data(), noise.data(), n, D, z_unit.data(), frame.data(), coef.data(),
                                     pass_coef.data());
    see::cpu::emit_points(geo, frame.data(), n, D, out.data(), prefix.data());
    return geo;
  }
};

void test_expansion_invariants_and_gradient() {
  std::mt19937_64 rng(7);
  for (int64_t n : {1, 2, 5, 9}) {
    Expansion e(n, n + 4, rng);
    const auto geo = e.run(e.z);
    const double* w_unit = e.frame.data();
    for (int64_t k = 0; k < n; ++k) {
      const double* p = e.out.data() + k * e.D;
      expect_close(see::dot(p, p, e.D), 1.0, 1e-12, "synthetic point is unit");
      expect_close(see::dot(p, w_unit, e.D), geo.a, 1e-12, "synthetic point keeps the cosine");
    }
    // Directional derivative of sum(grad * out) against central differences.
    std::normal_distribution<double> normal;
    std::vector<double> upstream(n * e.D), direction(e.D), h(n * e.D), work(2 * e.D), grad_z(e.D),
        qr_work((n - 1) * (n - 1) + 4 * (n - 1));
    for (auto& v : upstream) v = normal(rng);
    for (auto& v : direction) v = normal(rng);
    see::cpu::source_backward(geo, e.frame.data(), e.coef.data(), e.z_unit.data(), e.noise.data(), upstream.data(), n,
                              e.D, h.data(), work.data(), qr_work.data(), grad_z.data());
    const double step = 1e-6;
    auto objective = [&](double s) {
      std::vector<double> moved(e.z);
      for (int64_t d = 0; d < e.D; ++d) moved[d] += s * direction[d];
      e.run(moved);
      return see::dot(upstream.data(), e.out.data(), n * e.D);
    };
    const double numeric = (objective(step) - objective(-step)) / (2 * step);
    expect_close(see::dot(grad_z.data(), direction.data(), e.D), numeric, 1e-7 * (1 + std::fabs(numeric)),
                 "expansion backward matches finite differences");
  }
}

// Cholesky QR gives Gram-Schmidt's frame (to rounding) on well-conditioned
// draws, and refuses draws that lose most of their length to earlier rows.
void test_cholesky_frame() {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  for (int64_t n : {1, 2, 6, 9}) {
    const int64_t D = 3 * n + 10, rows = n + 1;
    std::vector<double> z(D), w(D), noise((n - 1) * D);
    for (auto* v : {&z, &w, &noise})
      for (auto& e : *v) e = normal(rng);
    see::normalize_row(z.data(), z.data(), D);
    see::normalize_row(w.data(), w.data(), D);
    std::vector<double> by_cholesky(rows * D), by_gram_schmidt(rows * D), gram(rows * rows), coef(rows * rows),
        pass(rows);
    see::cpu::frame_axes(z.data(), w.data(), D, by_gram_schmidt.data());
    see::cpu::gram_schmidt_draws(noise.data(), n, D, by_gram_schmidt.data(), coef.data(), pass.data());
    see::cpu::frame_axes(z.data(), w.data(), D, by_cholesky.data());
    std::copy(noise.begin(), noise.end(), by_cholesky.begin() + 2 * D);
    expect(see::cpu::cholesky_frame(by_cholesky.data(), 2, rows, D, gram.data()), "Cholesky QR accepts Gaussian draws",
           0, 1);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < rows; ++j)
        expect_close(see::dot(by_cholesky.data() + i * D, by_cholesky.data() + j * D, D), i == j ? 1.0 : 0.0,
                     1e-12, "Cholesky QR frame is orthonormal");
      for (int64_t d = 0; d < D; ++d)
        expect_close(by_cholesky[i * D + d], by_gram_schmidt[i * D + d], 1e-13, "Cholesky QR frame is Gram-Schmidt's");
    }
    if (n < 3) continue;
    // The second draw: the first plus a tenth of a fresh direction.
    for (int64_t d = 0; d < D; ++d) by_cholesky[3 * D + d] = by_cholesky[2 * D + d] + 0.1 * normal(rng);
    std::vector<double> before(by_cholesky);
    expect(!see::cpu::cholesky_frame(by_cholesky.data(), 2, rows, D, gram.data()), "the guard refuses a cancelling draw",
           1, 0);
    expect(before == by_cholesky, "a refused frame is left untouched", 0, 0);
  }
}

// Fraction mode takes the largest cosines, equal ones in batch order.
void test_select_rows() {
  const std::vector<double> s = {0.5, 0.9, 0.5, 0.1, 0.9, 0.5};
  const auto top = see::cpu::select_rows(s.data(), 6, 4, 0.0);
  expect(top == std::vector<int64_t>({1, 4, 0, 2}), "fraction selection order", top.size(), 4);
  const auto above = see::cpu::select_rows(s.data(), 6, std::nullopt, 0.5);
  expect(above == std::vector<int64_t>({0, 1, 2, 4, 5}), "threshold selection in batch order", above.size(), 5);
}

// Direct log(1 + sum exp) of a small problem: rows [0, B) real, the rest
// synthetic with weight lam; classes with no positive row drop out of 1/|P+|.
// With `first` and `count`, the share of the classes [first, first + count):
// their terms, with the weights of all C classes.
double direct_loss(const std::vector<double>& S, const std::vector<int64_t>& labels, int64_t B, int64_t C,
                   double alpha, double margin, double lam, int64_t first = 0, int64_t count = -1) {
  const int64_t N = static_cast<int64_t>(labels.size());
  if (count < 0) count = C;
  double loss = 0;
  for (int part = 0; part < 2; ++part) {
    const int64_t r0 = part == 0 ? 0 : B, r1 = part == 0 ? B : N;
    double pos_total = 0, neg_total = 0;
    int64_t with_positive = 0;
    for (int64_t c = 0; c < C; ++c) {
      double pos = 0, neg = 0;
      bool has = false;
      for (int64_t i = r0; i < r1; ++i) {
        const double s = S[i * C + c];
        if (labels[i] == c) pos += std::exp(-alpha * (s - margin)), has = true;
        else neg += std::exp(alpha * (s + margin));
      }
      with_positive += has;
      if (c < first || c >= first + count) continue;
      pos_total += std::log1p(pos);
      neg_total += std::log1p(neg);
    }
    if (with_positive > 0) loss += (part == 0 ? 1.0 : lam) * (pos_total / with_positive + neg_total / C);
  }
  return loss;
}

// The loss passes of the ATen glue (cpu/proxy_anchor_aten.h) on a matrix of
// cosines S (N x C_all, row-major, labels global): the share of the classes
// [first, first + count), in chunks of `width` classes. Returns the loss and
// (dL/dS)^T of those classes (count x N).
struct ChunkedPasses {
  double loss;
  std::vector<double> GT;
};

ChunkedPasses chunked_passes(const std::vector<double>& S, const std::vector<int64_t>& labels, int64_t B,
                             int64_t C_all, int64_t first, int64_t count, int64_t width, double alpha, double lam) {
  const int64_t N = static_cast<int64_t>(labels.size());
  const see::cpu::RowsByClass by_class(labels.data(), N, first, count, C_all);
  see::cpu::LossProblem<double> problem{nullptr, B, N, nullptr, by_class.rows.data(), alpha, 0.1, {1.0, lam},
                                        {see::cpu::classes_present(labels.data(), 0, B, C_all),
                                         see::cpu::classes_present(labels.data(), B, N, C_all)},
                                        C_all, !see::fixed_ref_is_safe<double>(alpha)};
  std::vector<double> GT(count * N), storage(4 * width);
  for (int64_t c = 0; c < count; ++c)
    for (int64_t i = 0; i < N; ++i) GT[c * N + i] = S[i * C_all + first + c];
  const see::cpu::ColumnTerms terms{{storage.data(), storage.data() + width},
                                    {storage.data() + 2 * width, storage.data() + 3 * width}};
  see::cpu::LossSums sums;
  for (int64_t begin = 0; begin < count; begin += width) {
    const int64_t chunk = std::min(width, count - begin);
    problem.ST = GT.data() + begin * N;
    problem.positives_begin = by_class.begin.data() + begin;
    for (int64_t c = chunk - 1; c >= 0; --c) see::cpu::loss_proxy_row(problem, c, true, terms);  // any order
    see::cpu::add_terms(problem, terms, chunk, sums);
  }
  return {see::cpu::total_loss(problem, sums), GT};
}

void test_proxy_anchor_blocks(bool exact_refs) {
  const int64_t C = 5, B = 4, N = 7;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> cosine(-1.0, 1.0);
  std::vector<double> S(N * C);
  for (auto& v : S) v = cosine(rng);
  const std::vector<int64_t> labels = {0, 1, 0, 3, 1, 1, 4};  // class 2 has no positive anywhere
  const double alpha = exact_refs ? 300 : 32, margin = 0.1, lam = 0.3;
  const ChunkedPasses whole = chunked_passes(S, labels, B, C, 0, C, C, alpha, lam);
  const double want = direct_loss(S, labels, B, C, alpha, margin, lam);
  expect_close(whole.loss, want, 1e-12 * std::fabs(want), "fused Proxy-Anchor loss equals the direct formula");
  if (exact_refs) return;  // the direct formula overflows its finite differences there
  for (int64_t e = 0; e < N * C; ++e) {
    std::vector<double> plus = S, minus = S;
    plus[e] += 1e-6;
    minus[e] -= 1e-6;
    const double numeric = (direct_loss(plus, labels, B, C, alpha, margin, lam) -
                            direct_loss(minus, labels, B, C, alpha, margin, lam)) / 2e-6;
    const double analytic = whole.GT[(e % C) * N + e / C];
    expect_close(analytic, numeric, 1e-6 * (1 + std::fabs(numeric)), "dL/dS matches finite differences");
  }
}

// Chunks of classes and shards of them. Each proxy's terms and column of dL/dS
// depend on its own column and the global weights alone, and the loss adds the
// terms in class order: chunked equals unchunked exactly. A shard is the
// direct formula's terms of its classes, rows of other classes its
// negatives, and the shares of a partition add up to the loss (to rounding).
void test_proxy_anchor_chunks_and_shards() {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> cosine(-1.0, 1.0);
  for (const double alpha : {32.0, 300.0}) {
    const int64_t C = 13, B = 9, N = 20;
    std::vector<double> S(N * C);
    for (auto& v : S) v = cosine(rng);
    std::vector<int64_t> labels(N);
    for (int64_t i = 0; i < N; ++i) labels[i] = (i * 5) % 11;  // classes 11 and 12 without positives
    const ChunkedPasses whole = chunked_passes(S, labels, B, C, 0, C, C, alpha, 0.3);
    for (const int64_t width : {1, 2, 4, 12}) {
      const ChunkedPasses chunked = chunked_passes(S, labels, B, C, 0, C, width, alpha, 0.3);
      expect(chunked.loss == whole.loss, "chunks of classes: the loss is the unchunked one", chunked.loss, whole.loss);
      expect(chunked.GT == whole.GT, "chunks of classes: dL/dS is the unchunked one", static_cast<double>(width), 0);
    }
    const std::vector<int64_t> cuts = {0, 1, 6, 6, 13};  // shards of 1, 5, 0 and 7 classes
    double total = 0;
    for (size_t k = 0; k + 1 < cuts.size(); ++k) {
      const int64_t first = cuts[k], count = cuts[k + 1] - cuts[k];
      const ChunkedPasses share = chunked_passes(S, labels, B, C, first, count, 2, alpha, 0.3);
      const double want = direct_loss(S, labels, B, C, alpha, 0.1, 0.3, first, count);
      expect_close(share.loss, want, 1e-12 * std::fabs(want), "a shard's loss");
      bool same_columns = true;  // G of the shard's classes, as in the whole problem's
      for (int64_t c = 0; c < count; ++c)
        for (int64_t i = 0; i < N; ++i) same_columns &= share.GT[c * N + i] == whole.GT[(first + c) * N + i];
      expect(same_columns, "a shard's dL/dS is the whole problem's columns", static_cast<double>(first), 0);
      total += share.loss;
    }
    expect_close(total, whole.loss, 1e-13 * std::fabs(whole.loss), "the shares of a partition add up to the loss");
  }
}

// RowsByClass groups the rows as test_proxy_anchor_blocks spells them out; a
// shard's rows are those of its classes, and the rows whose label lies outside
// [0, total) are counted (the glue then makes the loss and gradients NaN).
void test_rows_by_class() {
  const std::vector<int64_t> labels = {0, 1, 0, 3, 1, 1, 4};
  const see::cpu::RowsByClass grouped(labels.data(), 7, 0, 5, 5);
  expect(grouped.begin == std::vector<int64_t>({0, 2, 5, 5, 6, 7}) &&
             grouped.rows == std::vector<int64_t>({0, 2, 1, 4, 5, 3, 6}) && grouped.out_of_range == 0,
         "rows grouped by class", static_cast<double>(grouped.out_of_range), 0);
  const see::cpu::RowsByClass shard(labels.data(), 7, 1, 3, 5);  // classes 1, 2, 3
  expect(shard.begin == std::vector<int64_t>({0, 3, 3, 4}) && shard.rows == std::vector<int64_t>({1, 4, 5, 3}) &&
             shard.out_of_range == 0,
         "a shard's rows grouped by class", static_cast<double>(shard.rows.size()), 4);
  expect(see::cpu::classes_present(labels.data(), 0, 7, 5) == 4 && see::cpu::classes_present(labels.data(), 4, 7, 5) == 2,
         "classes present among the labels", 0, 0);

  const std::vector<int64_t> bad = {0, -1, 2, 3, 1, std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::max()};
  const see::cpu::RowsByClass by_class(bad.data(), 7, 1, 2, 3);  // classes 1 and 2 of 3
  expect(by_class.out_of_range == 4, "rows out of range counted", static_cast<double>(by_class.out_of_range), 4);
  expect(by_class.begin == std::vector<int64_t>({0, 1, 2}) && by_class.rows == std::vector<int64_t>({4, 2}),
         "rows out of range or of other classes are in no local class", static_cast<double>(by_class.rows.size()), 2);
  expect(see::cpu::classes_present(bad.data(), 0, 7, 3) == 3, "out-of-range labels are no class", 0, 0);
}

// A NaN cosine is not a column without terms: its term, and the loss, are
// NaN, and so is dL/dS at every entry of that term (same column, part and kind).
void test_nan_cosines_stay_nan() {
  const std::vector<int64_t> labels = {0, 1, 0, 1, 1};
  for (const double alpha : {32.0, 300.0})
    for (const int64_t where : {0, 1, 3}) {  // a positive, a negative, a synthetic row
      std::vector<double> S = {0.5, -0.2, 0.1, 0.7, 0.3, 0.2, -0.9, 0.4, 0.6, 0.0};
      S[where * 2] = NAN;
      const ChunkedPasses passes = chunked_passes(S, labels, 3, 2, 0, 2, 1, alpha, 0.3);
      expect(std::isnan(passes.loss), "a NaN cosine makes the loss NaN", passes.loss, NAN);
      bool term_nan = true;
      for (int64_t i = 0; i < 5; ++i) {
        const bool same_term = (i < 3) == (where < 3) && (labels[i] == 0) == (labels[where] == 0);
        term_nan &= !same_term || std::isnan(passes.GT[0 * 5 + i]);
      }
      expect(term_nan, "a NaN cosine makes dL/dS of its term NaN", static_cast<double>(where), 0);
    }
}

void test_slerp_weights() {
  for (double tau : {0.0, 0.3, 0.5, 1.0, 1.2})
    for (double theta : {0.0, 1e-8, 0.19, 0.49, 0.51, 1.0, 3.0}) {
      // (dc/dθ)/sin θ against central differences of c(θ) = tau sinc(tau θ)/sinc(θ).
      auto c = [&](double th) { return tau * see::sinc(tau * th) / see::sinc(th); };
      if (theta > 1e-3) {
        const double step = 1e-6;
        const double numeric = (c(theta + step) - c(theta - step)) / (2 * step) / std::sin(theta);
        expect_close(see::slerp_angle_weight(tau, theta), numeric, 1e-6 * (1 + std::fabs(numeric)), "slerp weight");
      } else {
        expect_close(see::slerp_angle_weight(tau, theta), tau * (1 - tau * tau) / 3, 1e-12, "slerp weight at 0");
      }
    }
  // Both branches of q(x) = (sin x - x cos x)/x^3 against the direct formula in long double.
  for (double x : {0.05, 0.3, 0.4999, 0.5001, 0.8, 2.0}) {
    const long double xl = x;
    const long double q = (sinl(xl) - xl * cosl(xl)) / (xl * xl * xl);
    expect_close(see::sinc_slope(x), static_cast<double>(q), 1e-15, "sinc_slope on both sides of the switch");
  }
}

// Random123's known-answer vectors (tests/kat_vectors); the stream's element
// 0..3 of seed 0 come from the first; fills of any range equal the scalar form;
// float32 draws within 1 ulp of the double formula of their 24-bit uniforms.
void test_philox_normal() {
  struct KnownAnswer {
    see::PhiloxWords counter;
    uint32_t key0, key1;
    see::PhiloxWords expected;
  };
  const KnownAnswer answers[] = {
      {{0, 0, 0, 0}, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffu, 0xffffffffu,
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, 0xa4093822u, 0x299f31d0u,
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const KnownAnswer& answer : answers) {
    const see::PhiloxWords got = see::philox4x32_10(answer.counter, answer.key0, answer.key1);
    expect(got.w0 == answer.expected.w0 && got.w1 == answer.expected.w1 && got.w2 == answer.expected.w2 &&
               got.w3 == answer.expected.w3,
           "Philox4x32-10 known answer", got.w0, answer.expected.w0);
  }
  const see::PhiloxWords first = see::philox_group_words(0, 0);
  expect(first.w0 == 0x6627e8d5u && first.w3 == 0x9b00dbd8u, "group 0 of seed 0", first.w0, 0x6627e8d5u);

  const uint64_t seed = 0x0123456789abcdefull;
  std::vector<float> floats(1100);
  std::vector<double> doubles(1100);
  for (uint64_t start : {0ull, 1ull, 2ull, 3ull, 5ull, 254ull, 1021ull, (1ull << 32) * 4 - 6})
    for (int64_t count : {0, 1, 3, 4, 7, 256, 257, 1031}) {
      see::philox_normal_fill(seed, start, count, floats.data());
      see::philox_normal_fill(seed, start, count, doubles.data());
      for (int64_t i = 0; i < count; ++i) {
        expect(floats[i] == see::philox_normal_at<float>(seed, start + i), "float fill equals the scalar form",
               floats[i], see::philox_normal_at<float>(seed, start + i));
        expect(doubles[i] == see::philox_normal_at<double>(seed, start + i), "double fill equals the scalar form",
               doubles[i], see::philox_normal_at<double>(seed, start + i));
      }
    }

  int64_t worst = 0;
  for (uint64_t index = 0; index < (1u << 18); ++index) {
    const see::PhiloxWords words = see::philox_group_words(seed, index / 4);
    const bool second_pair = (index & 2) != 0;
    const double u_a = (((second_pair ? words.w2 : words.w0) >> 8) + 0.5) * 0x1p-24;
    const double u_b = (((second_pair ? words.w3 : words.w1) >> 8) + 0.5) * 0x1p-24;
    const double r = std::sqrt(-2 * std::log(u_a)), theta = 6.283185307179586 * u_b;
    const float want = static_cast<float>((index & 1) ? r * std::sin(theta) : r * std::cos(theta));
    worst = std::max(worst, ulp_distance(see::philox_normal_at<float>(seed, index), want));
  }
  expect(worst <= 1, "float32 draws within 1 ulp of the double formula", static_cast<double>(worst), 1);
}

// ---------------------------------------------------------------- hot loop copies
// Every compiled copy of the hot loops (hot_loops.h) that this CPU can run
// against the same loops compiled here: the noise bit for bit (each of its
// operations is rounded once, whatever the instruction set), the rest to
// rounding (a copy may sum in another order and fuse
// multiply-adds).
template <typename T>
double max_abs_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double worst = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return worst;
}

template <typename T>
std::vector<T> normal_vector(int64_t size, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  std::vector<T> v(size);
  for (auto& e : v) e = static_cast<T>(normal(rng));
  return v;
}

template <typename T>
void test_copy_noise(const see::cpu::HotLoops<T>& loops) {
  const uint64_t seed = 0x9e3779b97f4a7c15ull;
  std::vector<T> got(1100);
  for (uint64_t start : {0ull, 1ull, 3ull, 254ull, 1021ull})
    for (int64_t count : {0, 1, 7, 257, 1031}) {
      loops.philox_normal_fill(seed, start, count, got.data());
      bool equal = true;
      for (int64_t i = 0; i < count; ++i) equal = equal && got[i] == see::philox_normal_at<T>(seed, start + i);
      expect(equal, "a copy's noise equals the scalar form", static_cast<double>(start), static_cast<double>(count));
    }
}

template <typename T>
void test_copy_rows(const see::cpu::HotLoops<T>& loops, double tol) {
  std::mt19937_64 rng(5);
  const int64_t R = 9, D = 37;
  const std::vector<T> in = normal_vector<T>(R * D, rng), grad_unit = normal_vector<T>(R * D, rng);
  std::vector<T> unit(R * D), norms(R), want_unit(R * D), want_norms(R);
  loops.normalize_rows(in.data(), unit.data(), norms.data(), 0, R, D);
  see::normalize_rows(in.data(), want_unit.data(), want_norms.data(), 0, R, D);
  expect(max_abs_diff(unit, want_unit) <= tol && max_abs_diff(norms, want_norms) <= tol * D,
         "a copy's unit rows", max_abs_diff(unit, want_unit), 0);
  std::vector<T> only_norms(R);
  loops.row_norms(in.data(), only_norms.data(), 0, R, D);
  expect(max_abs_diff(only_norms, want_norms) <= tol * D, "a copy's row norms", max_abs_diff(only_norms, want_norms),
         0);
  std::vector<T> grad(R * D), want_grad(R * D);
  loops.normalize_rows_backward(want_unit.data(), want_norms.data(), grad_unit.data(), grad.data(), 0, R, D);
  see::normalize_rows_backward(want_unit.data(), want_norms.data(), grad_unit.data(), want_grad.data(), 0, R, D);
  expect(max_abs_diff(grad, want_grad) <= tol, "a copy's normalisation backward", max_abs_diff(grad, want_grad), 0);
  std::vector<T> from_raw = grad_unit, want_from_raw = grad_unit;
  loops.normalize_rows_backward_from_raw(in.data(), want_norms.data(), from_raw.data(), 0, R, D);
  see::normalize_rows_backward_from_raw(in.data(), want_norms.data(), want_from_raw.data(), 0, R, D);
  expect(max_abs_diff(from_raw, want_from_raw) <= tol, "a copy's normalisation backward from raw rows",
         max_abs_diff(from_raw, want_from_raw), 0);
}

// The loss of test_proxy_anchor_blocks in T, both kinds of reference.
template <typename T>
void test_copy_loss(const see::cpu::HotLoops<T>& loops, double tol) {
  const int64_t C = 5, B = 4, N = 7;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> cosine(-1.0, 1.0);
  const std::vector<int64_t> begin = {0, 2, 5, 5, 6, 7}, rows = {0, 2, 1, 4, 5, 3, 6};
  std::vector<T> ST(C * N);
  for (auto& v : ST) v = static_cast<T>(cosine(rng));
  for (bool exact_refs : {false, true}) {
    std::vector<T> got = ST, want = ST;
    std::vector<double> got_storage(4 * C), want_storage(4 * C);
    auto problem_on = [&](std::vector<T>& matrix) {
      const T alpha = static_cast<T>(exact_refs ? 300 : 32);
      return see::cpu::LossProblem<T>{matrix.data(), B, N, begin.data(), rows.data(), alpha, T(0.1), {1.0, 0.3},
                                      {3, 2}, C, exact_refs};
    };
    auto terms_in = [C](std::vector<double>& storage) {
      return see::cpu::ColumnTerms{{storage.data(), storage.data() + C},
                                   {storage.data() + 2 * C, storage.data() + 3 * C}};
    };
    const auto got_problem = problem_on(got), want_problem = problem_on(want);
    const auto got_terms = terms_in(got_storage), want_terms = terms_in(want_storage);
    loops.loss_proxy_rows(got_problem, 0, C, true, got_terms);
    see::cpu::loss_proxy_rows(want_problem, 0, C, true, want_terms);
    see::cpu::LossSums got_sums, want_sums;
    see::cpu::add_terms(got_problem, got_terms, C, got_sums);
    see::cpu::add_terms(want_problem, want_terms, C, want_sums);
    const double got_loss = see::cpu::total_loss(got_problem, got_sums);
    const double want_loss = see::cpu::total_loss(want_problem, want_sums);
    expect_close(got_loss, want_loss, tol * std::fabs(want_loss), "a copy's Proxy-Anchor loss");
    double largest = 0.0;  // the entries grow with alpha
    for (const T g : want) largest = std::max(largest, std::fabs(static_cast<double>(g)));
    expect(max_abs_diff(got, want) <= tol * largest, "a copy's dL/dS", max_abs_diff(got, want), tol * largest);
  }
}

template <typename T>
void test_copy_expansion(const see::cpu::HotLoops<T>& loops, double tol) {
  std::mt19937_64 rng(13);
  for (int64_t n : {1, 2, 6}) {
    const int64_t D = 4 * n + 9;
    const std::vector<T> z = normal_vector<T>(D, rng), w = normal_vector<T>(D, rng);
    const std::vector<T> noise = normal_vector<T>((n - 1) * D, rng), grad = normal_vector<T>(n * D, rng);
    const see::cpu::ExpansionScratch<T> got_scratch(n, D, true), want_scratch(n, D, true);
    std::vector<T> got(n * D), want(n * D), got_grad(D), want_grad(D);
    loops.expand_source(z.data(), w.data(), noise.data(), n, D, got_scratch.buffers(), got.data());
    see::cpu::expand_source(z.data(), w.data(), noise.data(), n, D, want_scratch.buffers(), want.data());
    expect(max_abs_diff(got, want) <= tol, "a copy's expansion", max_abs_diff(got, want), 0);
    loops.expand_source_backward(z.data(), w.data(), noise.data(), grad.data(), n, D, got_scratch.buffers(),
                                 got_grad.data());
    see::cpu::expand_source_backward(z.data(), w.data(), noise.data(), grad.data(), n, D, want_scratch.buffers(),
                                     want_grad.data());
    expect(max_abs_diff(got_grad, want_grad) <= tol * n, "a copy's expansion backward",
           max_abs_diff(got_grad, want_grad), 0);
    std::vector<T> z_unit(D), w_unit(D), norms(2);
    see::normalize_rows(z.data(), z_unit.data(), norms.data(), 0, 1, D);
    see::normalize_rows(w.data(), w_unit.data(), norms.data(), 0, 1, D);
    for (const bool given : {true, false}) {
      const see::cpu::DrawSource<T> draws{given ? noise.data() : nullptr, 77, 5};
      loops.expand_unit_source(z_unit.data(), w_unit.data(), n, D, draws, got_scratch.buffers(), got.data());
      see::cpu::expand_unit_source(z_unit.data(), w_unit.data(), n, D, draws, want_scratch.buffers(), want.data());
      expect(max_abs_diff(got, want) <= tol, "a copy's expansion of a unit row", max_abs_diff(got, want), 0);
    }
  }
}

// docs/method.md §3.6 and §3.2 in the CPU loops. A source on its proxy's axis
// to rounding (a multiple of it, one ulp off it) takes rho = 0; one 100 times
// the criterion off it does not. A draw in the span of the frame (the proxy,
// the source, a repeated draw) makes the source's points and gradient NaN, in
// the expansion op's Gram-Schmidt and in the one-call path, whose Cholesky QR
// refuses such a draw and hands it to Gram-Schmidt; Gaussian draws do not.
template <typename T>
void test_axis_and_span_criteria() {
  std::mt19937_64 rng(19);
  const int64_t n = 4;
  const double u = std::numeric_limits<T>::epsilon() / 2;
  for (int64_t D : {5, 12}) {
    const std::vector<T> w = normal_vector<T>(D, rng), v = normal_vector<T>(D, rng);
    std::vector<T> w_unit(D), z(D), z_unit(D), frame((n + 1) * D);
    see::normalize_row(w.data(), w_unit.data(), D);
    auto on_axis = [&](const std::vector<T>& source) {
      see::normalize_row(source.data(), z_unit.data(), D);
      return see::cpu::frame_axes(z_unit.data(), w_unit.data(), D, frame.data()).degenerate;
    };
    for (const T scale : {T(1), T(-1), T(4), T(-0.25)}) {
      for (int64_t d = 0; d < D; ++d) z[d] = scale * w[d];
      expect(on_axis(z), "a multiple of the proxy is on its axis", static_cast<double>(scale), 1);
    }
    z = w;
    z[1] = std::nextafter(w[1], std::numeric_limits<T>::infinity());
    expect(on_axis(z), "one ulp off the proxy is on its axis", 0, 1);
    // 100 times the criterion off the axis, orthogonally.
    const T along = see::dot(v.data(), w_unit.data(), D);
    std::vector<T> off(D);
    for (int64_t d = 0; d < D; ++d) off[d] = v[d] - along * w_unit[d];
    const T off_norm = std::sqrt(see::dot(off.data(), off.data(), D));
    const T w_norm = std::sqrt(see::dot(w.data(), w.data(), D));
    for (int64_t d = 0; d < D; ++d) z[d] = w[d] + T(800 * u) * w_norm * off[d] / off_norm;
    expect(!on_axis(z), "100 times the criterion off the axis is not on it", 0, 1);

    // Draws: Gaussian, then the last one in the span of the frame before it.
    const std::vector<T> source = normal_vector<T>(D, rng), gaussian = normal_vector<T>((n - 1) * D, rng);
    const see::cpu::ExpansionScratch<T> scratch(n, D, true);
    std::vector<T> points(n * D), grad(n * D, T(1)), grad_z(D), source_unit(D);
    see::normalize_row(source.data(), source_unit.data(), D);
    for (int spanned = 0; spanned < 4; ++spanned) {
      std::vector<T> noise = gaussian;
      T* last = noise.data() + (n - 2) * D;
      for (int64_t d = 0; d < D; ++d)
        last[d] = spanned == 1 ? w[d] : spanned == 2 ? source[d] : spanned == 3 ? noise[d] : last[d];
      const bool want_nan = spanned > 0;
      see::cpu::expand_source(source.data(), w.data(), noise.data(), n, D, scratch.buffers(), points.data());
      bool nan = true, finite = true;
      for (const T p : points) nan = nan && std::isnan(p), finite = finite && std::isfinite(p);
      expect(want_nan ? nan : finite, "a draw in the span makes every point NaN, and only then",
             static_cast<double>(spanned), want_nan);
      see::cpu::expand_source_backward(source.data(), w.data(), noise.data(), grad.data(), n, D, scratch.buffers(),
                                       grad_z.data());
      nan = true, finite = true;
      for (const T g : grad_z) nan = nan && std::isnan(g), finite = finite && std::isfinite(g);
      expect(want_nan ? nan : finite, "... and the gradient NaN", static_cast<double>(spanned), want_nan);
      const see::cpu::DrawSource<T> given{noise.data(), 0, 0};
      see::cpu::expand_unit_source(source_unit.data(), w_unit.data(), n, D, given, scratch.buffers(), points.data());
      nan = true, finite = true;
      for (const T p : points) nan = nan && std::isnan(p), finite = finite && std::isfinite(p);
      expect(want_nan ? nan : finite, "the one-call path agrees", static_cast<double>(spanned), want_nan);
    }
  }
}

void test_hot_loop_copies() {
  const see::cpu::HotLoopSet* copies[3];
  const int count = see::cpu::runnable_hot_loop_sets(copies);
  for (int i = 0; i < count; ++i) {
    const see::cpu::HotLoopSet* copy = copies[i];
    std::printf("checking the hot loops compiled for %s\n", copy->name);
    test_copy_noise(copy->f32);
    test_copy_noise(copy->f64);
    test_copy_rows(copy->f32, 1e-6);
    test_copy_rows(copy->f64, 1e-14);
    test_copy_loss(copy->f32, 1e-5);
    test_copy_loss(copy->f64, 1e-13);
    test_copy_expansion(copy->f32, 1e-5);
    test_copy_expansion(copy->f64, 1e-13);
  }
  std::printf("this process runs the hot loops compiled for %s\n", see::cpu::hot_loop_set().name);
}

}  // namespace

int main() {
  test_fast_exp();
  test_mmd_centers();
  test_expansion_invariants_and_gradient();
  test_cholesky_frame();
  test_axis_and_span_criteria<double>();
  test_axis_and_span_criteria<float>();
  test_select_rows();
  test_proxy_anchor_blocks(false);
  test_proxy_anchor_blocks(true);
  test_proxy_anchor_chunks_and_shards();
  test_rows_by_class();
  test_nan_cosines_stay_nan();
  test_slerp_weights();
  test_philox_normal();
  test_hot_loop_copies();
  if (failures == 0) std::printf("all core tests passed\n");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
