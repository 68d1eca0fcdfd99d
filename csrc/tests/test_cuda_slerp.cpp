// The CUDA slerp kernels (cuda/slerp_kernels.cuh) under the emulation,
// against the CPU row loops (cpu/slerp_kernels.h), forward and backward.
//
// The rows cover both branches of the tangent (nearer chord), the exact
// antipode (its fixed great circle, with a tie for the least aligned axis),
// equal directions (θ = 0), a tiny angle (the Taylor branch of sinc's slope),
// t outside [0, 1], D not a multiple of the warp, D = 2048, and a row count
// that leaves the last block's warps partly without rows.
#include "cuda_emulation/emulation.h"

#include <cstdio>
#include <string>
#include <vector>

#include "cpu/slerp_kernels.h"
#include "cuda/slerp_kernels.cuh"
#include "cuda/slerp_launch.h"
#include "emulated_test_support.h"

namespace {

using see::emulation::launch;
using see::testing::check;
using see::testing::check_close;
using see::testing::gamma;

struct Rows {
  int64_t R, D;
  std::vector<double> a, b, t, grad;
};

// Random rows, then the special ones in the first rows.
Rows make_rows(int64_t R, int64_t D, std::mt19937_64& rng) {
  Rows r{R, D, see::testing::normal_vector<double>(R * D, rng), see::testing::normal_vector<double>(R * D, rng),
         std::vector<double>(R), see::testing::normal_vector<double>(R * D, rng)};
  std::uniform_real_distribution<double> uniform(-0.3, 1.3);
  for (auto& t : r.t) t = uniform(rng);
  auto row = [&](std::vector<double>& v, int64_t i) { return v.data() + i * D; };
  for (int64_t d = 0; d < D; ++d) {
    row(r.b, 0)[d] = row(r.a, 0)[d];            // θ = 0
    row(r.b, 1)[d] = -row(r.a, 1)[d];           // the exact antipode
    row(r.b, 2)[d] = row(r.a, 2)[d] * 3.0;      // one direction, another norm
    row(r.b, 3)[d] = row(r.a, 3)[d] + 1e-7 * row(r.b, 3)[d];  // θ ~ 1e-7
  }
  row(r.a, 1)[D / 2] = row(r.a, 1)[D - 1] = 0.0;  // antipode: two axes tie at |a_d| = 0, the first wins
  row(r.b, 1)[D / 2] = row(r.b, 1)[D - 1] = 0.0;
  // Row 4 close to the antipode, but not on it (the far branch of the tangent).
  for (int64_t d = 0; d < D; ++d) row(r.b, 4)[d] = -row(r.a, 4)[d] + 0.5 * row(r.b, 4)[d] / std::sqrt(double(D));
  r.t[0] = 0.5, r.t[1] = 0.25, r.t[2] = 1.3;
  return r;
}

template <typename T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// The angle of row i in float64, for the bounds.
double row_angle(const Rows& r, int64_t i) {
  see::cpu::SlerpRow<double> row(r.D);
  row.load(r.a.data() + i * r.D, r.b.data() + i * r.D, r.D);
  return row.theta;
}

// Error bound of one entry of slerp(â, b̂, t) or of its gradients, per
// implementation. Each norm, chord and dot is a sum of D terms of unit-scale
// rows (|â| = |b̂| = 1, Cauchy-Schwarz), within gamma_{D+3} of its value after
// the normalisation's roundings; θ = 2 atan2(c-, c+) with c-^2 + c+^2 = 4 moves
// by at most (c+ |dc-| + c- |dc+|) / 2 <= 3 gamma_{D+3}, plus atan2's few ulp;
// the few scalar functions of θ (cos, sinc, its slope) add a few ulp each,
// in the row's dtype on the CPU and in double in the kernel. The output is
// cos(tθ) â + (t sinc(tθ)/sinc θ) (b̂ - cos θ â), whose derivative in θ and in
// the unit rows is at most 1 + |t| for θ <= π/2 and grows like 1/sin θ
// beyond; the backward's weights add a 1/sinc(θ)^3 (slerp.h). With 16 as a
// generous count of the ulp-level steps above, one implementation is within
// 16 (1 + |t|) A(θ) gamma_{D+16} |scale| of the exact value, and the two
// within twice that.
template <typename T>
double entry_bound(const Rows& r, int64_t i, bool backward) {
  const double theta = row_angle(r, i), t = std::fabs(r.t[i]);
  const double pi = 3.14159265358979323846;
  double growth = theta > pi / 2 && theta < pi ? 1.0 / std::sin(theta) : 1.0;
  if (backward) {
    const double s = see::sinc(theta);
    growth *= (1.0 + t) * (theta < pi ? 1.0 / (s * s * s) : 1.0);
  }
  return 2.0 * 16.0 * (1.0 + t) * growth * gamma<T>(static_cast<double>(r.D) + 16.0);
}

template <typename T>
void test_slerp(const Rows& r) {
  const int64_t R = r.R, D = r.D;
  const std::vector<T> a = as<T>(r.a), b = as<T>(r.b), t = as<T>(r.t), grad = as<T>(r.grad);
  std::vector<T> out(R * D), want(R * D);
  launch(see::cuda::slerp_launch(R), see::cuda::slerp_kernel<T>, a.data(), b.data(), t.data(), R, D, out.data());
  see::cpu::SlerpRow<T> row(D);
  for (int64_t i = 0; i < R; ++i) {
    row.load(a.data() + i * D, b.data() + i * D, D);
    see::cpu::slerp_row(row, t[i], D, want.data() + i * D);
  }
  for (int64_t i = 0; i < R; ++i) {
    const double tol = entry_bound<T>(r, i, false);
    double worst = 0.0;
    for (int64_t d = 0; d < D; ++d)
      worst = std::max(worst, std::fabs(double(out[i * D + d]) - double(want[i * D + d])));
    check_close(worst, 0.0, tol, (std::string("slerp forward, ") + see::testing::dtype_name<T>()).c_str());
  }

  // Backward: the gradients w.r.t. a and b go through the norms |a|, |b| (up
  // to 3 here), so their bound scales with |g| / min(|a|, |b|); grad_t with |g|.
  std::vector<T> grad_a(R * D), grad_b(R * D), grad_t(R);
  launch(see::cuda::slerp_launch(R), see::cuda::slerp_backward_kernel<T>, grad.data(), a.data(), b.data(), t.data(), R,
         D, grad_a.data(), grad_b.data(), grad_t.data());
  std::vector<T> a_unit_bar(D), b_unit_bar(D), want_a(D), want_b(D);
  for (int64_t i = 0; i < R; ++i) {
    row.load(a.data() + i * D, b.data() + i * D, D);
    const T want_t =
        see::cpu::slerp_row_backward(row, t[i], grad.data() + i * D, D, a_unit_bar.data(), b_unit_bar.data());
    see::normalize_row_backward(row.a_unit.data(), row.a_norm, a_unit_bar.data(), want_a.data(), D);
    see::normalize_row_backward(row.b_unit.data(), row.b_norm, b_unit_bar.data(), want_b.data(), D);
    const double g_norm = std::sqrt(see::dot(r.grad.data() + i * D, r.grad.data() + i * D, D));
    const double scale = g_norm / std::min<double>(row.a_norm, row.b_norm);
    const double tol = entry_bound<T>(r, i, true);
    double worst = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      worst = std::max(worst, std::fabs(double(grad_a[i * D + d]) - double(want_a[d])));
      worst = std::max(worst, std::fabs(double(grad_b[i * D + d]) - double(want_b[d])));
    }
    const std::string what = std::string("slerp backward, ") + see::testing::dtype_name<T>();
    check_close(worst, 0.0, tol * scale, (what + ": grad_a and grad_b").c_str());
    check_close(grad_t[i], want_t, tol * g_norm * (1.0 + row_angle(r, i)), (what + ": grad_t").c_str());
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(2024);
  const Rows small = make_rows(20, 33, rng);  // 3 blocks of 8 warps, the last with 4 rows
  const Rows wide = make_rows(6, 2048, rng);  // one block, 64 coordinates per lane
  for (const Rows* rows : {&small, &wide}) {
    test_slerp<double>(*rows);
    test_slerp<float>(*rows);
  }
  if (see::testing::failures == 0) std::printf("emulated slerp kernels: all tests passed\n");
  return see::testing::failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
