// The CUDA kernels of the SEE expansion (cuda/expansion_kernels.cuh) under the
// emulation, forward and backward, against the CPU loops
// (cpu/expansion_kernels.h), with the launch plan of cuda/expansion_launch.h.
//
// Shapes reach every code path: n = 1 (no draws), D not a multiple of 32,
// D = n + 1 (the frame fills the space), n = 64, D = 2048 with the scratch in
// shared memory above the 48 KB default, the large part of the scratch in
// global memory, both parts in global memory; sources equal to their proxy
// and opposite to it (rho = 0, the degenerate frame of docs/method.md §3.6),
// sources on a generic proxy's axis to rounding (§3.6 again), and draws in the
// span of the frame (§3.2: NaN points and gradient, in both). Global scratch
// starts as NaN, as the emulation's shared memory does, so a read of scratch
// that was not written shows.
#include "cuda_emulation/emulation.h"

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "cpu/expansion_kernels.h"
#include "cuda/expansion_kernels.cuh"
#include "cuda/expansion_launch.h"
#include "emulated_test_support.h"

namespace {

using see::emulation::launch;
using see::testing::check;
using see::testing::check_close;

constexpr int64_t kHopperOptin = 227 * 1024;  // sharedMemPerBlockOptin of an H100

// Where a case expects the plan to put the scratch.
enum class Placement { kShared, kSharedOptIn, kLargeGlobal, kBothGlobal };

struct Case {
  const char* name;
  int64_t n, D;
  int64_t shared_optin;  // the device's opt-in limit the plan is made for
  Placement forward, backward;
};

struct Sources {
  int64_t k, n, D;
  std::vector<double> z, w, noise, grad;
};

// Random sources, then (when there is room) one equal to its proxy and one
// opposite to it. Their proxy has four equal entries 2^20: the unit proxy is
// exactly 0.5 there, so ẑ.ŵ = ±1 and the residual is exactly 0 in any order.
Sources make_sources(int64_t k, int64_t n, int64_t D, std::mt19937_64& rng) {
  Sources s{k, n, D, see::testing::normal_vector<double>(k * D, rng), see::testing::normal_vector<double>(k * D, rng),
            see::testing::normal_vector<double>(k * (n - 1) * D, rng),
            see::testing::normal_vector<double>(k * n * D, rng)};
  for (int64_t src = 1; src < k && src < 3 && D >= 8; ++src) {
    double* z = s.z.data() + src * D;
    double* w = s.w.data() + src * D;
    for (int64_t d = 0; d < D; ++d) w[d] = (d == 1 || d == 3 || d == 6 || d == 7) ? 1048576.0 : 0.0;
    for (int64_t d = 0; d < D; ++d) z[d] = src == 1 ? w[d] : -0.5 * w[d];
  }
  return s;
}

template <typename T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// The CPU loops on every source: points (k x n x D), and with `grad` the
// gradient w.r.t. z; kappa receives max_j |g_j| / R_jj, the growth of a draw
// when Gram-Schmidt divides by what is left of it.
template <typename T>
void cpu_expansion(const Sources& s, std::vector<T>& points, std::vector<T>& grad_z, double* kappa) {
  const int64_t k = s.k, n = s.n, D = s.D;
  const std::vector<T> z = as<T>(s.z), w = as<T>(s.w), noise = as<T>(s.noise), grad = as<T>(s.grad);
  std::vector<T> frame((n + 1) * D), z_unit(D), gs_coef((n + 1) * (n + 1)), pass_coef(n + 1), prefix(D), h(n * D),
      work(2 * D), qr_work((n - 1) * (n - 1) + 4 * (n - 1));
  points.assign(k * n * D, T(0));
  grad_z.assign(k * D, T(0));
  if (kappa) *kappa = 1.0;
  for (int64_t src = 0; src < k; ++src) {
    const T* source_noise = noise.data() + src * (n - 1) * D;
    const auto geo = see::cpu::build_frame(z.data() + src * D, w.data() + src * D, source_noise, n, D, z_unit.data(),
                                           frame.data(), gs_coef.data(), pass_coef.data());
    see::cpu::emit_points(geo, frame.data(), n, D, points.data() + src * n * D, prefix.data());
    see::cpu::source_backward(geo, frame.data(), gs_coef.data(), z_unit.data(), source_noise,
                              grad.data() + src * n * D, n, D, h.data(), work.data(), qr_work.data(),
                              grad_z.data() + src * D);
    for (int64_t j = 0; kappa && j + 1 < n; ++j) {
      const double g = std::sqrt(double(see::dot(source_noise + j * D, source_noise + j * D, D)));
      *kappa = std::max(*kappa, g / double(gs_coef[j * (n + 1) + j + 2]));
    }
  }
}

// The kernel, launched as the plan for `shared_optin` says; checks that the
// plan puts the scratch where the case expects it.
template <typename T, typename Kernel, typename... Inputs>
void run_kernel(const Case& c, bool backward, int64_t k, Kernel kernel, T* out, Inputs... inputs) {
  const see::cuda::ExpansionSizes sizes{c.n, c.D, backward};
  const see::cuda::ExpansionLaunch plan = see::cuda::plan_expansion_launch(sizes, k, sizeof(T), c.shared_optin);
  const Placement want = backward ? c.backward : c.forward;
  const Placement got = plan.small_global             ? Placement::kBothGlobal
                        : plan.large_global           ? Placement::kLargeGlobal
                        : plan.needs_shared_opt_in()  ? Placement::kSharedOptIn
                                                      : Placement::kShared;
  check(got == want, "the launch plan puts the scratch where the case expects it");
  check(plan.shape.shared_bytes <= c.shared_optin - see::cuda::kStaticSharedReserve,
        "the plan's dynamic shared memory fits the device's budget");
  std::vector<T> global(plan.global_elems, std::numeric_limits<T>::quiet_NaN());
  launch(plan.shape, kernel, inputs..., sizes, plan.placement(global.data()), out);
}

// Error bound of one entry, per implementation. Every dot product and norm is
// a sum of at most D + n + 4 terms of unit-scale vectors (the normalisations
// and the projections add a few), within g = gamma_tilde_{D+n+4} of its value
// in any order. A Gram-Schmidt step subtracts at most n + 1 projections, each
// carrying the error of its coefficient and of the earlier frame vector, and
// divides by what is left of the draw, R_jj, which multiplies the error by
// |g_j| / R_jj <= kappa: the frame entries stay within
// E_frame = 4 (n + 1) kappa g. A point is a ŵ + rho sum_j Bw[k][j] f_{1+j}
// with sum_j |Bw[k][j]| <= sqrt(n) (unit simplex rows): within
// (2 + 2 sqrt(n)) E_frame. The backward solves with R22, whose entries carry
// E_frame relative to R_jj and whose condition is at most kappa, and sums
// n + 1 such terms per entry: within (n + 1) kappa E_frame |grad| / |z|.
// Two implementations differ by at most twice the bound of one. In float64
// the bound is capped at float64_rounding_level: the chain above allows for
// growth that these draws do not show (differences of 10-600 ulp measured).
template <typename T>
double tolerance(double derived, double scale) {
  return sizeof(T) == 8 ? std::min(derived, see::testing::float64_rounding_level(scale)) : derived;
}

template <typename T>
double frame_error(int64_t n, int64_t D, double kappa) {
  return 4.0 * double(n + 1) * kappa * see::testing::gamma_tilde<T>(double(D + n + 4));
}

template <typename T>
bool all_nan(const std::vector<T>& v) {
  for (const T x : v)
    if (!std::isnan(x)) return false;
  return true;
}

// One source's slice [src * size, (src + 1) * size) of got and want: both all
// NaN where the CPU's is (a draw in the span, docs/method.md §3.2), else within tol.
template <typename T>
void check_source(const std::vector<T>& got_all, const std::vector<T>& want_all, int64_t src, int64_t size, double tol,
                  const std::string& what) {
  const std::vector<T> got(got_all.begin() + src * size, got_all.begin() + (src + 1) * size);
  const std::vector<T> want(want_all.begin() + src * size, want_all.begin() + (src + 1) * size);
  if (std::isnan(double(want[0])))
    check(all_nan(want) && all_nan(got), (what + ": NaN where the CPU's is NaN, all of the source").c_str());
  else
    check_close(see::testing::max_abs_diff(got, want), 0.0, tol, what.c_str());
}

template <typename T>
void test_case(const Case& c, const Sources& s, double kappa) {
  const int64_t k = s.k, n = s.n, D = s.D;
  const std::vector<T> z = as<T>(s.z), w = as<T>(s.w), noise = as<T>(s.noise), grad = as<T>(s.grad);
  std::vector<T> want_points, want_grad;
  cpu_expansion(s, want_points, want_grad, nullptr);

  std::vector<T> points(k * n * D, std::numeric_limits<T>::quiet_NaN());
  run_kernel<T>(c, false, k, see::cuda::expansion_forward_kernel<T>, points.data(), z.data(), w.data(), noise.data());
  const double point_tol = 2.0 * (2.0 + 2.0 * std::sqrt(double(n))) * frame_error<T>(n, D, kappa);
  const std::string what = std::string(c.name) + ", " + see::testing::dtype_name<T>();
  for (int64_t src = 0; src < k; ++src)
    check_source(points, want_points, src, n * D, tolerance<T>(point_tol, 1.0), what + ": points");

  std::vector<T> grad_z(k * D, std::numeric_limits<T>::quiet_NaN());
  run_kernel<T>(c, true, k, see::cuda::expansion_backward_kernel<T>, grad_z.data(), grad.data(), z.data(), w.data(),
                noise.data());
  for (int64_t src = 0; src < k; ++src) {
    const double g = std::sqrt(see::dot(s.grad.data() + src * n * D, s.grad.data() + src * n * D, n * D));
    const double z_norm = std::sqrt(see::dot(s.z.data() + src * D, s.z.data() + src * D, D));
    const double tol = 2.0 * double(n + 1) * kappa * frame_error<T>(n, D, kappa) * g / z_norm;
    check_source(grad_z, want_grad, src, D, tolerance<T>(tol, g / z_norm), what + ": gradient w.r.t. z");
  }
}

// Sources that docs/method.md singles out, exact in T: 0 random; 1, 2, 3 on a
// generic proxy's axis to rounding (equal to it, -2 times it, one ulp off it),
// which both implementations take as rho = 0 (§3.6), so that their gradients,
// decided by rounding before, now agree; 4 and 5 with a draw in the span of
// the frame (the proxy, the source), whose points and gradient are NaN (§3.2).
template <typename T>
Sources make_edge_sources(int64_t n, int64_t D, std::mt19937_64& rng) {
  using see::testing::normal_vector;
  Sources s{6, n, D, normal_vector<double>(6 * D, rng), normal_vector<double>(6 * D, rng),
            normal_vector<double>(6 * (n - 1) * D, rng), normal_vector<double>(6 * n * D, rng)};
  for (auto* v : {&s.z, &s.w, &s.noise}) {
    const std::vector<T> rounded = as<T>(*v);
    v->assign(rounded.begin(), rounded.end());
  }
  auto row = [D](std::vector<double>& v, int64_t i) { return v.data() + i * D; };
  for (int64_t src = 1; src < 4; ++src) {
    for (int64_t d = 0; d < D; ++d) row(s.z, src)[d] = (src == 2 ? -2.0 : 1.0) * row(s.w, src)[d];
  }
  row(s.z, 3)[0] = double(std::nextafter(T(row(s.w, 3)[0]), std::numeric_limits<T>::infinity()));
  double* last_draw_4 = s.noise.data() + (4 * (n - 1) + n - 2) * D;
  double* first_draw_5 = s.noise.data() + 5 * (n - 1) * D;
  for (int64_t d = 0; d < D; ++d) last_draw_4[d] = row(s.w, 4)[d], first_draw_5[d] = row(s.z, 5)[d];
  return s;
}

// What the CPU loops say of the edge sources: on the axis, and NaN, where expected.
template <typename T>
void check_edge_sources_on_the_cpu(const Sources& s) {
  std::vector<T> points, grad_z;
  cpu_expansion(s, points, grad_z, nullptr);
  const int64_t n = s.n, D = s.D;
  std::vector<T> z_unit(D), frame((n + 1) * D);
  for (int64_t src = 0; src < 6; ++src) {
    const std::vector<T> z = as<T>(std::vector<double>(s.z.begin() + src * D, s.z.begin() + (src + 1) * D));
    const std::vector<T> w = as<T>(std::vector<double>(s.w.begin() + src * D, s.w.begin() + (src + 1) * D));
    see::normalize_row(z.data(), z_unit.data(), D);
    see::normalize_row(w.data(), frame.data(), D);
    const bool on_axis = see::cpu::frame_axes(z_unit.data(), frame.data(), D, frame.data()).degenerate;
    check(on_axis == (src >= 1 && src <= 3), "the CPU takes exactly the sources on the axis as rho = 0");
    const bool nan_points = all_nan(std::vector<T>(points.begin() + src * n * D, points.begin() + (src + 1) * n * D));
    const bool nan_grad = all_nan(std::vector<T>(grad_z.begin() + src * D, grad_z.begin() + (src + 1) * D));
    check(nan_points == (src >= 4) && nan_grad == (src >= 4), "the CPU's NaN sources are those with a draw in the span");
  }
}

void run_edge(const Case& c, std::mt19937_64& rng) {
  const Sources s64 = make_edge_sources<double>(c.n, c.D, rng), s32 = make_edge_sources<float>(c.n, c.D, rng);
  check_edge_sources_on_the_cpu<double>(s64);
  check_edge_sources_on_the_cpu<float>(s32);
  for (const Sources* s : {&s64, &s32}) {
    std::vector<double> points, grad;
    double kappa = 1.0;
    Sources finite = *s;  // kappa of the sources with a defined frame
    finite.k = 4;
    cpu_expansion(finite, points, grad, &kappa);
    if (s == &s64) test_case<double>(c, *s, kappa);
    else test_case<float>(c, *s, kappa);
  }
}

void run(const Case& c, int64_t k, std::mt19937_64& rng, bool with_float32 = true) {
  const Sources s = make_sources(k, c.n, c.D, rng);
  std::vector<double> points, grad;
  double kappa = 1.0;
  cpu_expansion(s, points, grad, &kappa);
  test_case<double>(c, s, kappa);
  if (with_float32) test_case<float>(c, s, kappa);
}

}  // namespace

int main() {
  using P = Placement;
  std::mt19937_64 rng(17);
  const int64_t tiny_optin = see::cuda::kStaticSharedReserve + 64;  // too small even for the small part
  run({"n = 1, D = 33 (no draws)", 1, 33, kHopperOptin, P::kShared, P::kShared}, 3, rng);
  run({"n = 6, D = 37", 6, 37, kHopperOptin, P::kShared, P::kShared}, 3, rng);
  run({"D = n + 1 = 10", 9, 10, kHopperOptin, P::kShared, P::kShared}, 3, rng);
  run({"n = 5, both scratch parts in global memory", 5, 40, tiny_optin, P::kBothGlobal, P::kBothGlobal}, 3, rng);
  // float64, n = 4, D = 2048: 80 KB forward, 160 KB backward: shared memory beyond the 48 KB default.
  run({"D = 2048, shared scratch above 48 KB", 4, 2048, kHopperOptin, P::kSharedOptIn, P::kSharedOptIn}, 1, rng,
      false);
  // With a 48 KB opt-in limit the frame no longer fits; the small part stays in shared memory.
  run({"D = 2048, large scratch part in global memory", 4, 2048, 48 * 1024, P::kLargeGlobal, P::kLargeGlobal}, 1, rng,
      false);
  // float32 at D = 2048: 40 KB forward, 80 KB backward.
  {
    const Case c{"D = 2048", 4, 2048, kHopperOptin, P::kShared, P::kSharedOptIn};
    const Sources s = make_sources(1, c.n, c.D, rng);
    std::vector<double> points, grad;
    double kappa = 1.0;
    cpu_expansion(s, points, grad, &kappa);
    test_case<float>(c, s, kappa);
  }
  // n = 64 with D = n + 1: the longest Gram-Schmidt chain, the frame filling the space.
  run({"n = 64, D = 65", 64, 65, kHopperOptin, P::kSharedOptIn, P::kSharedOptIn}, 1, rng, false);
  run_edge({"on the axis and in the span, D = 12", 4, 12, kHopperOptin, P::kShared, P::kShared}, rng);
  run_edge({"on the axis and in the span, D = n + 1 = 5", 4, 5, kHopperOptin, P::kShared, P::kShared}, rng);
  if (see::testing::failures == 0) std::printf("emulated expansion kernels: all tests passed\n");
  return see::testing::failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
