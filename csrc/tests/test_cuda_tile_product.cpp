// The tensor-core tile product (cuda/tile_product_kernels.cuh) under the
// emulation's WMMA fragments, against the product in long double.
//
// Shapes reach partial tiles in every dimension (rows, columns and K not
// multiples of 16 or 32), several tiles each way, K = 0 and single entries.
// Each entry's error is bounded by a multiple of sum_k |a_k||b_k| (s_abs):
// - double (fp64 fragments, K fused multiply-adds in k order): gamma_K.
// - float, tf32 (operands rounded to nearest with u_t = 2^-11, products exact
//   in float, K additions in float): (1 + u_t)^2 (1 + gamma_K) - 1.
// - float, split tf32 (a = hi + lo exactly, lo rounded to tf32, so |lo| <= u_t
//   |a| and its rounding <= u_t^2 |a|; lo_a lo_b left out): the three products
//   differ from a b by at most 3 u_t^2 (1 + u_t) |a||b|, and their 3K terms
//   add with gamma_3K times (1 + u_t)^2 |a||b|.
// - float, bf16 (operands rounded to nearest even with u_b = 2^-8, products
//   exact in float, K additions in float): (1 + u_b)^2 (1 + gamma_K) - 1.
// A wrong index or a dropped slab moves entries by O(s_abs), far outside.
#include "cuda_emulation/emulation.h"

#include <cstdio>
#include <random>
#include <vector>

#include "cuda/tile_product_kernels.cuh"
#include "cuda/tile_product_launch.h"
#include "emulated_test_support.h"

namespace {

using see::cuda::ProductPrecision;
using see::emulation::launch;
using see::testing::check_close;
using see::testing::gamma;

constexpr double kTf32Roundoff = 1.0 / 2048;  // 2^-11
constexpr double kBf16Roundoff = 1.0 / 256;   // 2^-8: 8 significant bits, round to nearest

template <typename T>
double bound_factor(ProductPrecision precision, int64_t K) {
  if (sizeof(T) == 8) return gamma<T>(static_cast<double>(K));
  const double ut = kTf32Roundoff;
  if (precision == ProductPrecision::kTf32) return (1 + ut) * (1 + ut) * (1 + gamma<T>(static_cast<double>(K))) - 1;
  const double ub = kBf16Roundoff;  // each operand rounded once; their product exact in float, summed in float
  if (precision == ProductPrecision::kBf16) return (1 + ub) * (1 + ub) * (1 + gamma<T>(static_cast<double>(K))) - 1;
  return 3 * ut * ut * (1 + ut) + gamma<T>(3.0 * K) * (1 + ut) * (1 + ut);
}

template <typename T>
void test_product(int64_t rows, int64_t cols, int64_t K, ProductPrecision precision, std::mt19937_64& rng) {
  const std::vector<T> a = see::testing::normal_vector<T>(rows * K, rng), b = see::testing::normal_vector<T>(cols * K, rng);
  std::vector<T> out(rows * cols, T(-7));
  if (rows > 0 && cols > 0)
    launch(see::cuda::tile_product_launch(rows, cols), see::cuda::tile_product_kernel<T>, a.data(), rows, b.data(), cols,
           K, precision, out.data());
  const double factor = bound_factor<T>(precision, K);
  double worst_ratio = 0.0;
  int bad = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      long double want = 0, s_abs = 0;
      for (int64_t k = 0; k < K; ++k) {
        want += static_cast<long double>(a[i * K + k]) * b[j * K + k];
        s_abs += std::fabs(static_cast<long double>(a[i * K + k]) * b[j * K + k]);
      }
      const double diff = std::fabs(static_cast<double>(out[i * cols + j] - want));
      const double tol = factor * static_cast<double>(s_abs);
      bad += !(diff <= tol);
      if (tol > 0) worst_ratio = std::max(worst_ratio, diff / tol);
    }
  char what[160];
  std::snprintf(what, sizeof what, "%s %s tile product %lldx%lldx%lld: entries outside the bound",
                see::testing::dtype_name<T>(),
                precision == ProductPrecision::kTf32 ? "tf32" : precision == ProductPrecision::kBf16 ? "bf16" : "split-tf32",
                static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(K));
  check_close(bad, 0, 0, what);
  if (std::getenv("SEE_TEST_VERBOSE")) std::printf("%s: worst error / bound %.3g\n", what, worst_ratio);
}

// Bits a split-tf32 product must reach: a float product that the plain tf32
// product misses by far more than float's rounding (the bound is not vacuous).
void test_split_is_more_accurate(std::mt19937_64& rng) {
  const int64_t rows = 20, cols = 20, K = 40;
  const std::vector<float> a = see::testing::normal_vector<float>(rows * K, rng), b = see::testing::normal_vector<float>(cols * K, rng);
  std::vector<float> split(rows * cols), single(rows * cols);
  launch(see::cuda::tile_product_launch(rows, cols), see::cuda::tile_product_kernel<float>, a.data(), rows, b.data(),
         cols, K, ProductPrecision::kSplitTf32, split.data());
  launch(see::cuda::tile_product_launch(rows, cols), see::cuda::tile_product_kernel<float>, a.data(), rows, b.data(),
         cols, K, ProductPrecision::kTf32, single.data());
  double split_err = 0, single_err = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double want = 0;
      for (int64_t k = 0; k < K; ++k) want += double(a[i * K + k]) * b[j * K + k];
      split_err = std::max(split_err, std::fabs(split[i * cols + j] - want));
      single_err = std::max(single_err, std::fabs(single[i * cols + j] - want));
    }
  // tf32 errors are ~2^-11 relative per operand, split ones ~2^-22: a factor of hundreds.
  check_close(split_err * 50 < single_err ? 0 : 1, 0, 0, "split tf32 is far more accurate than one tf32 product");
  std::vector<float> bf16(rows * cols);
  launch(see::cuda::tile_product_launch(rows, cols), see::cuda::tile_product_kernel<float>, a.data(), rows, b.data(),
         cols, K, ProductPrecision::kBf16, bf16.data());
  double bf16_err = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double want = 0;
      for (int64_t k = 0; k < K; ++k) want += double(a[i * K + k]) * b[j * K + k];
      bf16_err = std::max(bf16_err, std::fabs(bf16[i * cols + j] - want));
    }
  // bf16 keeps 3 fewer bits than tf32: its products miss by several times more (the operands are rounded).
  check_close(single_err * 3 < bf16_err ? 0 : 1, 0, 0, "bf16 products are less accurate than tf32 ones");
}

}  // namespace

int main() {
  std::mt19937_64 rng(2024);
  const int64_t shapes[][3] = {{37, 45, 70}, {1, 1, 1}, {64, 96, 32}, {33, 17, 5}, {5, 70, 129}, {16, 16, 0}};
  for (const auto& s : shapes) {
    for (ProductPrecision p : {ProductPrecision::kSplitTf32, ProductPrecision::kTf32, ProductPrecision::kBf16})
      test_product<float>(s[0], s[1], s[2], p, rng);
    test_product<double>(s[0], s[1], s[2], ProductPrecision::kSplitTf32, rng);
  }
  test_split_is_more_accurate(rng);
  std::printf("%s: %d failures\n", see::testing::failures == 0 ? "tile products as bounded" : "FAIL",
              see::testing::failures);
  return see::testing::failures == 0 ? 0 : 1;
}
