// The one-call SEE loss on the GPU (cuda/see_loss_pipeline.cuh: the rows, the
// selection, the draws, the expansion and the flash-style loss on emulated
// tensor cores) under the emulation, stage by stage against the CPU kernels,
// each stage given the emulated stage's input, so that every bound is the
// rounding of that stage alone:
// - unit rows, unit axes, proxy norms and positive cosines against
//   normalize_row / dot (cpu/normalize.h);
// - the selection against select_rows (cpu/row_selection.h), exactly, and
//   |P+| against classes_present;
// - the draws against philox_normal_fill, bit for bit;
// - the synthetic points against the expansion kernel of cuda/expansion_kernels.cuh
//   (itself tested against the CPU in test_cuda_expansion) and normalize_row;
// - the loss, dL/dx and dL/dproxies against the CPU loss loops
//   (cpu/proxy_anchor_kernels.h) on the emulated rows.
// Shapes reach partial tiles (B, C, D, N not multiples of 16 or 32), several
// class and row tiles, both modes, given noise, no synthetic rows, a large
// alpha (exact references), tf32 and bf16 products (their own bounds), and the flags:
// a label out of range, a non-finite embedding, a non-finite proxy give a NaN
// loss, NaN gradients and the flag bits in the value-flags output; a batch of
// no rows and proxies of no classes stay within their buffers.
//
// The backward runs as the CUDA glue runs it, from its own params and the
// forward's saved state, with an incoming gradient of 1 or 0.75 folded in.
//
// Last, the launches of one call at the SOP-like shape (B = 180, D = 128,
// C = 11318, n = 16, 40% expanded), recorded rather than run: 6 in the
// forward (7 with the seed's draw before the op), 2 in the backward, and no
// read of device memory by the host, hence no synchronisation: every device
// pointer of the call points into a page that the host may not read.
#include "cuda_emulation/emulation.h"

#include <sys/mman.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include "cpu/normalize.h"
#include "cpu/proxy_anchor_kernels.h"
#include "cpu/row_selection.h"
#include "cuda/see_loss_pipeline.cuh"
#include "emulated_test_support.h"
#include "loss_params.h"
#include "philox_normal.h"

namespace {

using see::testing::check;
using see::testing::check_close;
using see::testing::gamma;
using see::testing::unit_roundoff;

struct Case {
  const char* name;
  int64_t B, C, D, n;
  std::optional<int64_t> num_selected;  // none: the threshold mode
  double threshold, alpha;
  bool given_noise;
  int multiprocessors;  // the device the backward's splits of the classes are planned for
  see::Products products = see::Products::kFloat32;
  double incoming = 1.0;  // the backward's incoming gradient of the loss
};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The inputs of one call, in double (rounded to T when used).
struct Inputs {
  std::vector<double> x, proxies, noise;
  std::vector<int64_t> labels;
  int64_t seed = 12345;
};

Inputs make_inputs(const Case& c, std::mt19937_64& rng) {
  Inputs in{see::testing::normal_vector<double>(c.B * c.D, rng), see::testing::normal_vector<double>(c.C * c.D, rng),
            see::testing::normal_vector<double>(c.B * (c.n - 1) * c.D, rng), std::vector<int64_t>(c.B)};
  std::uniform_int_distribution<int64_t> label(0, c.C - 1);
  for (auto& y : in.labels) y = label(rng);
  in.labels[c.B - 1] = in.labels[0];  // a class with two rows; equal cosines below
  for (int64_t i = 0; i < c.B; ++i)   // rows pulled towards their proxy: cosines spread over [-1, 1]
    for (int64_t d = 0; d < c.D; ++d) in.x[i * c.D + d] += 1.5 * (i % 3) * in.proxies[in.labels[i] * c.D + d];
  for (int64_t d = 0; d < c.D; ++d) in.x[(c.B - 1) * c.D + d] = in.x[d];  // a tie of the selection
  return in;
}

// Host arrays for the workspace, poisoned (NaN, -1) so that a read of what no kernel wrote shows.
struct HostArrays {
  std::vector<std::shared_ptr<void>> owned;

  template <typename E>
  E* operator()(E, int64_t count) {
    E* data = new E[std::max<int64_t>(count, 1)];
    std::fill(data, data + count, std::is_floating_point<E>::value ? E(kNaN) : E(-1));
    owned.emplace_back(data, [](void* q) { delete[] static_cast<E*>(q); });
    return data;
  }
};

// One emulated call: its inputs and outputs, its workspace (read through p), its launches.
template <typename T>
struct Call {
  std::vector<T> x, proxies, noise, grad_x, grad_proxies;
  std::vector<int64_t> labels;
  int64_t seed = 0, num_expanded = -1, value_flags = -1;
  T loss = T(-7), mean_cosine = T(-7), grad_loss = T(1);
  HostArrays workspace;
  see::cuda::SeeLossKernelParams<T> p{};
  see::cuda::SeeLossSizes sizes{};
  int launches = 0, backward_launches = 0;

  const see::cuda::SelectionState& state() const { return *p.state; }
};

template <typename T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// The op's params of a case, as op_checks.h fills them (lam 0.3, margin 0.1).
see::SeeLossParams see_loss_settings(const Case& c, bool compute_grad) {
  const see::ProxyAnchorParams loss{{c.alpha, 0.1}, 0.3, {0, c.C, c.C}, see::kDefaultChunkBytes, compute_grad, false};
  return {loss, c.n, c.num_selected, c.threshold, c.products};
}

template <typename T>
void run(const Case& c, const Inputs& in, bool compute_grad, Call<T>& k) {
  k.x = as<T>(in.x);
  k.proxies = as<T>(in.proxies);
  k.noise = as<T>(in.noise);
  k.labels = in.labels;
  k.seed = in.seed;
  k.p = see::cuda::see_loss_kernel_params<T>(see_loss_settings(c, compute_grad), k.x.data(), k.labels.data(),
                                             k.proxies.data(), c.given_noise ? k.noise.data() : nullptr, &k.seed,
                                             c.B, c.D);
  k.sizes = see::cuda::see_loss_sizes(k.p);
  see::cuda::allocate_see_loss_workspace(k.p, k.sizes, k.workspace);
  T* saved_values = k.workspace(T{}, k.sizes.saved.values);
  int64_t* saved_indices = k.workspace(int64_t{}, k.sizes.saved.indices);
  see::cuda::bind_saved_state(k.p, k.sizes.max_rows, saved_values, saved_indices);
  k.p.loss = &k.loss;
  k.p.num_expanded = &k.num_expanded;
  k.p.mean_cosine = &k.mean_cosine;
  k.p.value_flags = &k.value_flags;
  see::cuda::enqueue_see_loss(k.p, k.sizes, [&](const see::cuda::LaunchShape& shape, auto kernel, auto&&... args) {
    ++k.launches;
    see::emulation::launch(shape, kernel, args...);
  });
  if (!compute_grad) return;
  // The backward as the CUDA glue makes it: its own params, the saved state bound again.
  auto b = see::cuda::see_loss_backward_kernel_params<T>(c.alpha, c.products, k.proxies.data(), c.B, c.C, c.D,
                                                         c.multiprocessors);
  see::cuda::bind_saved_state(b, k.sizes.max_rows, saved_values, saved_indices);
  k.grad_loss = static_cast<T>(c.incoming);
  k.grad_x.assign(c.B * c.D, std::numeric_limits<T>::quiet_NaN());
  k.grad_proxies.assign(c.C * c.D, std::numeric_limits<T>::quiet_NaN());
  b.grad_loss = &k.grad_loss;
  b.grad_x_partial = k.workspace(T{}, b.row_splits * c.B * c.D);
  b.grad_x = k.grad_x.data();
  b.grad_proxies = k.grad_proxies.data();
  see::cuda::enqueue_see_loss_backward(b, [&](const see::cuda::LaunchShape& shape, auto kernel, auto&&... args) {
    ++k.backward_launches;
    see::emulation::launch(shape, kernel, args...);
  });
}

// Relative difference of each entry from `want`, its largest over all.
template <typename T>
double worst_relative(const T* got, const T* want, int64_t size) {
  double worst = 0.0;
  for (int64_t e = 0; e < size; ++e) {
    const double d = std::fabs(double(got[e]) - double(want[e])) / (std::fabs(double(want[e])) + 1e-300);
    worst = std::max(worst, std::isnan(d) ? kNaN : d);
  }
  return worst;
}

// Stage 1. Per implementation a norm is within gamma_{D+1} and a unit entry
// within gamma_{D+2} of its value, relative; two implementations within
// twice that. The cosine of two unit rows: a sum of D products of entries
// of magnitude <= 1 in two orders, within 2 gamma_D.
template <typename T>
void check_rows(const Case& c, const Call<T>& k, const std::string& name) {
  const int64_t D = c.D;
  std::vector<T> want(D);
  double rows = 0.0, axes = 0.0, norms = 0.0, proxy_norms = 0.0, cosines = 0.0;
  for (int64_t i = 0; i < c.B; ++i) {
    const T norm = see::normalize_row(k.x.data() + i * D, want.data(), D);
    rows = std::max(rows, worst_relative(k.p.rows + i * D, want.data(), D));
    norms = std::max(norms, worst_relative(&k.p.row_norms[i], &norm, 1));
    see::normalize_row(k.proxies.data() + k.labels[i] * D, want.data(), D);
    axes = std::max(axes, worst_relative(k.p.axes + i * D, want.data(), D));
    const T s = see::dot(k.p.rows + i * D, k.p.axes + i * D, D);
    cosines = std::max(cosines, std::fabs(double(k.p.positive_cosine[i]) - double(s)));
  }
  for (int64_t q = 0; q < c.C; ++q) {
    const T norm = see::row_norm(k.proxies.data() + q * D, D);
    proxy_norms = std::max(proxy_norms, worst_relative(&k.p.proxy_norms[q], &norm, 1));
  }
  check_close(rows, 0.0, 2 * gamma<T>(D + 2), (name + ": unit rows").c_str());
  check_close(axes, 0.0, 2 * gamma<T>(D + 2), (name + ": unit axes").c_str());
  check_close(norms, 0.0, 2 * gamma<T>(D + 1), (name + ": row norms").c_str());
  check_close(proxy_norms, 0.0, 2 * gamma<T>(D + 1), (name + ": proxy norms").c_str());
  check_close(cosines, 0.0, 2 * gamma<T>(D), (name + ": positive cosines").c_str());
}

// Stage 2, exactly: the same rows in the same order from the same cosines.
template <typename T>
std::vector<int64_t> check_selection(const Case& c, const Call<T>& k, const std::string& name) {
  const std::vector<int64_t> want = see::cpu::select_rows(k.p.positive_cosine, c.B, c.num_selected, c.threshold);
  const int64_t kk = static_cast<int64_t>(want.size());
  const auto& state = k.state();
  check(state.expanded == kk && k.num_expanded == kk, (name + ": the number expanded").c_str());
  check(std::equal(want.begin(), want.end(), k.p.expanded_rows), (name + ": the expanded rows, in order").c_str());
  std::vector<int64_t> row_labels(k.labels);
  for (const int64_t row : want) row_labels.insert(row_labels.end(), c.n, k.labels[row]);
  const int64_t N = static_cast<int64_t>(row_labels.size());
  check(state.rows == N && std::equal(row_labels.begin(), row_labels.end(), k.p.row_labels),
        (name + ": the rows' labels").c_str());
  check(state.positive_classes[0] == see::cpu::classes_present(row_labels.data(), 0, c.B, c.C) &&
            state.positive_classes[1] == see::cpu::classes_present(row_labels.data(), c.B, N, c.C),
        (name + ": |P+| of both parts").c_str());
  double sum = 0.0, magnitude = 0.0;
  for (int64_t i = 0; i < c.B; ++i) {
    sum += k.p.positive_cosine[i];
    magnitude += std::fabs(double(k.p.positive_cosine[i]));
  }
  check_close(k.mean_cosine, sum / c.B, (2 * gamma<double>(c.B) * magnitude) / c.B + unit_roundoff<T>() * std::fabs(sum / c.B),
              (name + ": mean positive cosine").c_str());
  check(state.flags == 0 && k.value_flags == 0, (name + ": no flag, and 0 written out").c_str());
  return want;
}

// Stage 3: the draws bit for bit, and the synthetic points against the
// tested expansion kernel on the same sources, normalised on the host: the
// same operations up to the normalisation, within 2 gamma_{D+2} relative.
template <typename T>
void check_synthetic(const Case& c, const Call<T>& k, const std::vector<int64_t>& expanded, const std::string& name) {
  const int64_t kk = static_cast<int64_t>(expanded.size()), n = c.n, D = c.D;
  if (kk == 0) return;
  if (!c.given_noise) {
    std::vector<T> want(k.sizes.draws);
    see::philox_normal_fill<T>(static_cast<uint64_t>(k.seed), 0, want.size(), want.data());
    check(std::equal(want.begin(), want.end(), k.p.draws), (name + ": the draws, bit for bit").c_str());
  }
  std::vector<T> z(kk * D), w(kk * D), noise(kk * (n - 1) * D), points(kk * n * D);
  for (int64_t j = 0; j < kk; ++j) {
    const int64_t row = expanded[j];
    std::copy_n(k.p.rows + row * D, D, z.data() + j * D);
    std::copy_n(k.p.axes + row * D, D, w.data() + j * D);
    const T* draws = c.given_noise ? k.noise.data() + row * (n - 1) * D : k.p.draws + j * (n - 1) * D;
    std::copy_n(draws, (n - 1) * D, noise.data() + j * (n - 1) * D);
  }
  const see::cuda::ExpansionLaunch plan = see::cuda::expand_selected_launch(n, D, kk, sizeof(T));
  std::vector<T> scratch(plan.global_elems, std::numeric_limits<T>::quiet_NaN());
  see::emulation::launch(plan.shape, see::cuda::expansion_forward_kernel<T>, z.data(), w.data(), noise.data(),
                         plan.sizes, plan.placement(scratch.data()), points.data());
  for (int64_t r = 0; r < kk * n; ++r) see::normalize_row(points.data() + r * D, points.data() + r * D, D);
  check_close(worst_relative(k.p.rows + c.B * D, points.data(), kk * n * D), 0.0, 2 * gamma<T>(D + 2),
              (name + ": synthetic points").c_str());
}

// Stage 4: the CPU's loss loops on the emulated rows and the unit proxies.
// Each cosine differs from the CPU's by the tensor-core product's rounding
// (test_cuda_tile_product: gamma_D in float64; split tf32 in float) on unit
// vectors, plus the proxies' normalisation (2 gamma_{D+2}) and the rounding to
// T of the CPU's long double product: dS. An exponential exp(alpha (s - ref))
// then moves by expm1(alpha dS) relative, a
// column's sum by that plus its order of summation (a thread's rows of every
// row tile in T, the 4 row lanes in T, against kExpBlock blocks in T added
// in double). From there the chain of test_cuda_proxy_anchor's compare_passes:
// delta_term per column term, the loss within sum_p w_p (C / |P_p| + 1)
// delta_term plus its own double rounding; G relative 2 delta_term + alpha dS
// + a few u. dL/dx̂ = G P̂ over the C classes, and dL/dP̂ = G^T R over the N
// rows, each entry within (g_rel + gamma_{terms + tiles + 1}(T) + 2
// gamma_{D+2}) sum |G||V| (V the other factor); the normalisation backward
// then adds |u_d| sum_d' |u_d'| e_d' and its own 2 gamma_{D+4} |g|, over the norm.
template <typename T>
void check_loss(const Case& c, const Call<T>& k, const std::string& name) {
  const int64_t B = c.B, C = c.C, D = c.D;
  const auto& state = k.state();
  const int64_t N = state.rows;
  std::vector<T> proxies_unit(C * D), proxy_norms(C);
  for (int64_t q = 0; q < C; ++q) proxy_norms[q] = see::normalize_row(k.proxies.data() + q * D, proxies_unit.data() + q * D, D);
  std::vector<T> ST(C * N);  // the CPU's layout: classes x rows
  for (int64_t q = 0; q < C; ++q)
    for (int64_t i = 0; i < N; ++i) {
      long double s = 0;
      for (int64_t d = 0; d < D; ++d) s += static_cast<long double>(k.p.rows[i * D + d]) * proxies_unit[q * D + d];
      ST[q * N + i] = static_cast<T>(s);
    }
  const see::cpu::RowsByClass by_class(k.p.row_labels, N, 0, C, C);
  see::cpu::LossProblem<T> problem{ST.data(), B, N, by_class.begin.data(), by_class.rows.data(), static_cast<T>(c.alpha),
                                   T(0.1), {1.0, 0.3}, {state.positive_classes[0], state.positive_classes[1]}, C,
                                   !see::fixed_ref_is_safe<T>(c.alpha)};
  std::vector<double> storage(4 * C);
  const see::cpu::ColumnTerms terms{{storage.data(), storage.data() + C}, {storage.data() + 2 * C, storage.data() + 3 * C}};
  see::cpu::loss_proxy_rows(problem, 0, C, true, terms);
  see::cpu::LossSums sums;
  see::cpu::add_terms(problem, terms, C, sums);
  const double loss = see::cpu::total_loss(problem, sums);

  const double uT = unit_roundoff<T>(), u = unit_roundoff<double>(), ut = 1.0 / 2048;
  // float64: fp64 fragments; float: split tf32 (test_cuda_tile_product's bound), or
  // with Products::kTf32 each operand rounded to tf32 (relative 2^-11 each) and the
  // products summed in float: (1 + ut)^2 (1 + gamma_D) - 1, relative to sum |a||b| <= 1.
  // With Products::kBf16 the same with bf16's u_b = 2^-8.
  const bool single = sizeof(T) == 4 && c.products != see::Products::kFloat32;
  const double uo = c.products == see::Products::kBf16 ? 1.0 / 256 : ut;  // the operands' rounding
  const double product = sizeof(T) == 8 ? gamma<T>(D)
                         : single       ? (1 + uo) * (1 + uo) * (1 + gamma<T>(D)) - 1
                                        : 3 * ut * ut * (1 + ut) + gamma<T>(3.0 * D) * (1 + ut) * (1 + ut);
  const double dS = product + 2 * gamma<T>(D + 2) + uT;
  // |exp(a) - exp(b)| <= exp(b) expm1(|a - b|); the chain below is first order in
  // the deltas (tf32 at alpha 32, D = 45: alpha dS = 0.03).
  const double delta_exp = std::expm1(c.alpha * dS);
  const double per_thread = std::ceil(N / 32.0) * 8 + 4;
  const double delta_sum =
      delta_exp + gamma<T>(per_thread) + gamma<T>(double(see::cpu::kExpBlock)) + gamma<double>(double(N) + 4);
  const double lse_max = c.alpha * 2.1 + std::log(double(N) + 1);
  const double delta_term = delta_sum + 8 * u * (1 + lse_max);
  double loss_tol = (gamma<double>(double(C) + 8) + 2 * uT) * std::fabs(loss);
  for (int part = 0; part < 2; ++part)
    if (state.positive_classes[part] > 0)
      loss_tol += (part == 0 ? 1.0 : 0.3) * (double(C) / state.positive_classes[part] + 1.0) * delta_term;
  check_close(k.loss, loss, loss_tol, (name + ": loss").c_str());
  if (k.grad_x.empty()) return;

  // The incoming gradient g is folded into each scale: one more rounding of each entry of G when g != 1
  // (the emulated gradient divided by g below, in double).
  const double g_rel = 2 * delta_term + delta_exp + 8 * u + 2 * uT + (c.incoming != 1.0 ? 2 * uT : 0.0);
  // Gradient w.r.t. the raw rows `raw` (rows x D, unit rows `unit`, norms) of
  // G (rows x C, or its transpose) times V (C x D), against the emulated one.
  auto compare = [&](const std::vector<T>& got, const T* unit, const T* norms, int64_t rows, int64_t inner,
                     auto&& G, const T* V, const char* what) {
    double worst = 0.0;
    std::vector<T> grad_unit(D), want(D);
    std::vector<double> e(D);
    for (int64_t i = 0; i < rows; ++i) {
      double g_sq = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        long double acc = 0, mag = 0;
        for (int64_t q = 0; q < inner; ++q) {
          acc += static_cast<long double>(G(i, q)) * V[q * D + d];
          mag += std::fabs(static_cast<long double>(G(i, q)) * V[q * D + d]);
        }
        grad_unit[d] = static_cast<T>(acc);
        g_sq += double(acc) * double(acc);
        e[d] = (g_rel + gamma<T>(double(inner) + std::ceil(inner / 32.0) + 1) + 2 * gamma<T>(D + 2)) * double(mag);
      }
      see::normalize_row_backward(unit + i * D, norms[i], grad_unit.data(), want.data(), D);
      double along = 0.0;
      for (int64_t d = 0; d < D; ++d) along += std::fabs(double(unit[i * D + d])) * e[d];
      for (int64_t d = 0; d < D; ++d) {
        const double tol =
            (e[d] + std::fabs(double(unit[i * D + d])) * along + 2 * gamma<T>(D + 4) * std::sqrt(g_sq)) / double(norms[i]) +
            4 * double(std::numeric_limits<T>::denorm_min());
        const double diff = std::fabs(double(got[i * D + d]) / c.incoming - double(want[d]));
        worst = std::max(worst, std::isnan(diff) ? kNaN : diff / tol);
      }
    }
    check_close(worst, 0.0, 1.0, (name + ": " + what + ", diff / bound").c_str());
  };
  compare(k.grad_x, k.p.rows, k.p.row_norms, B, C, [&](int64_t i, int64_t q) { return ST[q * N + i]; },
          proxies_unit.data(), "dL/dx");
  compare(k.grad_proxies, proxies_unit.data(), proxy_norms.data(), C, N,
          [&](int64_t q, int64_t i) { return ST[q * N + i]; }, k.p.rows, "dL/dproxies");
}

template <typename T>
void test_case(const Case& c, std::mt19937_64& rng) {
  const std::string name = std::string(c.name) + ", " + see::testing::dtype_name<T>();
  const Inputs in = make_inputs(c, rng);
  Call<T> k;
  run<T>(c, in, true, k);
  check(k.launches <= 6 && k.backward_launches == 2, (name + ": at most 6 launches forward, 2 backward").c_str());
  check_rows(c, k, name);
  const std::vector<int64_t> expanded = check_selection(c, k, name);
  check_synthetic(c, k, expanded, name);
  check_loss(c, k, name);
  Call<T> no_grad;  // without gradients: the same forward
  run<T>(c, in, false, no_grad);
  check(no_grad.loss == k.loss && no_grad.launches == k.launches && no_grad.value_flags == 0,
        (name + ": the loss without gradients").c_str());
}

bool all_nan(const std::vector<float>& v) {
  for (const float e : v)
    if (!std::isnan(e)) return false;
  return !v.empty();
}

// A flagged call: its bit set, a NaN loss and NaN gradients, no index out of
// its buffer (AddressSanitizer watches).
void test_flag(const char* what, int64_t bit, void (*spoil)(Inputs&), std::mt19937_64& rng) {
  const Case c{what, 21, 40, 19, 3, 7, 0.0, 32.0, false, 132};
  Inputs in = make_inputs(c, rng);
  spoil(in);
  Call<float> k;
  run<float>(c, in, true, k);
  const auto& state = k.state();
  check((state.flags & bit) != 0, (std::string(what) + ": flagged").c_str());
  check(std::isnan(k.loss) && all_nan(k.grad_x) && all_nan(k.grad_proxies),
        (std::string(what) + ": NaN loss and gradients").c_str());
  check(k.value_flags == state.flags, (std::string(what) + ": the flags written out").c_str());
}

// Shapes without rows or without classes, which the raw op accepts: no
// launch out of its limits, no index out of a buffer (AddressSanitizer
// watches), and the CPU's answers where it has them: a batch of no rows has
// loss 0 and zero gradients for the proxies; without classes every label is
// out of range, so the loss and dL/dx are NaN.
void test_empty_shapes(std::mt19937_64& rng) {
  const Case no_rows{"no rows", 0, 5, 6, 3, 2, 0.0, 32.0, false, 132};
  Inputs in{{}, see::testing::normal_vector<double>(5 * 6, rng), {}, {}};
  Call<float> k;
  run<float>(no_rows, in, true, k);
  bool zero = true;
  for (const float g : k.grad_proxies) zero = zero && g == 0.0f;
  check(k.loss == 0.0f && k.num_expanded == 0 && zero, "no rows: loss 0, no expansion, zero dL/dproxies");
  const Case no_classes{"no classes", 5, 0, 6, 3, 2, 0.0, 32.0, false, 132};
  in = Inputs{see::testing::normal_vector<double>(5 * 6, rng), {}, see::testing::normal_vector<double>(5 * 2 * 6, rng),
              std::vector<int64_t>(5, 0)};
  Call<float> none;
  run<float>(no_classes, in, true, none);
  check(std::isnan(none.loss) && all_nan(none.grad_x) && (none.state().flags & see::cuda::kLabelOutOfRange) != 0,
        "no classes: every label out of range, NaN loss and dL/dx");
}

void test_launches_at_sop_shape() {
  const int64_t B = 180, C = 11318, D = 128, n = 16, k = 72;
  const long page = sysconf(_SC_PAGESIZE);
  void* forbidden = mmap(nullptr, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!check(forbidden != MAP_FAILED, "a page the host may not read")) return;
  float* f = static_cast<float*>(forbidden);
  int64_t* i = static_cast<int64_t*>(forbidden);
  const see::SeeLossParams settings{{{32.0, 0.1}, 0.2, {0, C, C}, see::kDefaultChunkBytes, true, false}, n, k, 0.0,
                                    see::Products::kFloat32};
  see::cuda::SeeLossKernelParams<float> p = see::cuda::see_loss_kernel_params<float>(settings, f, i, f, nullptr, i,
                                                                                     B, D);
  p.rows = p.row_norms = p.axes = p.positive_cosine = p.draws = p.expansion_scratch = p.proxy_norms = p.column_refs =
      p.column_scales = p.loss = p.mean_cosine = f;
  p.row_labels = p.row_flags = p.proxy_flags = p.expanded_rows = p.num_expanded = p.value_flags = i;
  p.state = static_cast<see::cuda::SelectionState*>(forbidden);
  p.tile_loss = static_cast<double*>(forbidden);
  const see::cuda::SeeLossSizes sizes = see::cuda::see_loss_sizes(p);
  int launches = 0;
  auto record = [&](const see::cuda::LaunchShape& shape, auto, auto&&...) {
    ++launches;
    check(shape.grid[0] >= 1 && shape.grid[0] <= 2147483647u && shape.grid[1] <= 65535 && shape.grid[2] <= 65535 &&
              shape.block[0] * shape.block[1] * shape.block[2] <= 1024 && shape.shared_bytes <= 48 * 1024,
          "SOP-like shape: a launch within the device's limits, without opt-in shared memory");
  };
  see::cuda::enqueue_see_loss(p, sizes, record);
  const int forward = launches;
  auto b = see::cuda::see_loss_backward_kernel_params<float>(32.0, see::Products::kFloat32, f, B, C, D, 132);
  see::cuda::bind_saved_state(b, sizes.max_rows, f, i);
  b.grad_loss = b.grad_x_partial = b.grad_x = b.grad_proxies = f;
  b.state = static_cast<see::cuda::SelectionState*>(forbidden);
  see::cuda::enqueue_see_loss_backward(b, record);
  const int backward = launches - forward;
  std::printf("SOP-like shape (180, 128, 11318): %d forward and %d backward launches, no read of device memory\n",
              forward, backward);
  check(forward == 6, "SOP-like shape: 6 forward launches (the draws and the expansion included)");
  check(backward == 2, "SOP-like shape: 2 backward launches");
  munmap(forbidden, page);
}

}  // namespace

int main() {
  std::mt19937_64 rng(22);
  const Case cases[] = {
      // name, B, C, D, n, num_selected, threshold, alpha, given noise, multiprocessors
      {"fraction mode, partial tiles", 37, 70, 45, 4, 15, 0.0, 32.0, false, 132},
      {"threshold mode", 30, 33, 20, 3, std::nullopt, 0.3, 32.0, false, 1},
      {"given noise, n = 1", 19, 17, 40, 1, 5, 0.0, 32.0, true, 132},
      {"given noise", 23, 50, 33, 5, 6, 0.0, 32.0, true, 2},
      {"no synthetic rows", 25, 65, 36, 4, 0, 0.0, 32.0, false, 1},
      {"large alpha (exact references)", 26, 40, 24, 3, 8, 0.0, 400.0, false, 132},
      {"tf32 products", 37, 70, 45, 4, 15, 0.0, 32.0, false, 132, see::Products::kTf32},
      {"tf32 products, threshold mode", 30, 33, 20, 3, std::nullopt, 0.3, 32.0, false, 1, see::Products::kTf32},
      {"an incoming gradient of 0.75", 37, 70, 45, 4, 15, 0.0, 32.0, false, 132, see::Products::kFloat32, 0.75},
      {"bf16 products, alpha 4", 37, 70, 45, 4, 15, 0.0, 4.0, false, 132, see::Products::kBf16},
  };
  for (const Case& c : cases) {
    test_case<double>(c, rng);
    test_case<float>(c, rng);
  }
  test_flag("a label out of range", see::cuda::kLabelOutOfRange, [](Inputs& in) { in.labels[3] = 40; }, rng);
  test_flag("a negative label", see::cuda::kLabelOutOfRange, [](Inputs& in) { in.labels[0] = -1; }, rng);
  test_flag("an infinite embedding", see::cuda::kNonFiniteEmbedding, [](Inputs& in) { in.x[5] = INFINITY; }, rng);
  test_flag("a NaN proxy", see::cuda::kNonFiniteProxy, [](Inputs& in) { in.proxies.back() = NAN; }, rng);
  test_empty_shapes(rng);
  test_launches_at_sop_shape();
  std::printf("%s: %d failures\n", see::testing::failures == 0 ? "one-call SEE loss as the CPU kernels" : "FAIL",
              see::testing::failures);
  return see::testing::failures == 0 ? 0 : 1;
}
