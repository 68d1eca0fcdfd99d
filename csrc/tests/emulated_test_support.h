// What the emulated CUDA kernel tests share: failure counting, random inputs,
// the unit roundoff of each dtype, and the error bound of reordered sums.
//
// The kernels and the CPU loops compute the same formulas; they differ in the
// order in which they add (strided per thread, then across warps and blocks,
// against vectorised loops), and here and there in the precision of a few
// per-row scalars. Every bound below is built from the standard bound on a
// sum: a sum of k terms in any order is within gamma_k = k u / (1 - k u)
// times the sum of the terms' magnitudes of its exact value (Higham, Accuracy
// and Stability of Numerical Algorithms, 2nd ed., (3.5)), so two orders
// differ by at most twice that. Each test states how that bound travels
// through its kernel. In float64 the bounds are rounding-level (a few hundred
// ulp at most), so a wrong index or a missing term, which moves results by
// O(1), cannot hide under them; the float32 runs then check the code paths
// that differ by dtype.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

namespace see {
namespace testing {

inline int failures = 0;

inline bool check(bool ok, const char* what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what);
  }
  return ok;
}

// |got - want| <= tol, NaN never within; reports the first misses. With
// SEE_TEST_VERBOSE set in the environment every check prints its margin.
inline bool check_close(double got, double want, double tol, const char* what) {
  const double diff = std::fabs(got - want);
  const bool ok = diff <= tol;
  if (std::getenv("SEE_TEST_VERBOSE"))
    std::printf("%-50s diff %.3g tol %.3g diff/tol %.3g\n", what, diff, tol, diff / tol);
  if (!ok) {
    ++failures;
    if (failures < 30)
      std::printf("FAIL %s: got %.17g, want %.17g, |diff| %.3g > tol %.3g\n", what, got, want, diff, tol);
  }
  return ok;
}

// The largest |got - want| over two arrays, NaN if either holds a NaN.
template <typename A, typename B>
double max_abs_diff(const std::vector<A>& got, const std::vector<B>& want) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
    worst = std::max(worst, d);
  }
  return worst;
}

template <typename A, typename B>
void check_arrays_close(const std::vector<A>& got, const std::vector<B>& want, double tol, const char* what) {
  if (!check(got.size() == want.size(), what)) return;
  check_close(max_abs_diff(got, want), 0.0, tol, what);
}

template <typename T>
constexpr double unit_roundoff() {
  return std::numeric_limits<T>::epsilon() / 2;
}

// gamma_k of the type T.
template <typename T>
double gamma(double k) {
  const double ku = k * unit_roundoff<T>();
  return ku / (1.0 - ku);
}

// The probabilistic counterpart of gamma_k (Higham and Mary, "A new approach
// to probabilistic rounding error analysis", SISC 2019, Thm 2.4): modelling
// the roundings as independent and mean-zero, a sum of k terms is within
// lambda sqrt(k) u (to first order) of its value, times the terms' magnitudes,
// with probability at least 1 - 2k exp(-lambda^2 / 2); lambda = 8 makes that
// 1 - 3e-10 for the longest sums here. Used where worst-case gamma_k, stacked
// along a chain of dependent sums, would be too loose to mean anything.
// For k < 64 the worst case is the smaller.
template <typename T>
double gamma_tilde(double k) {
  const double x = 8.0 * std::sqrt(k) * unit_roundoff<T>();
  return std::min(x / (1.0 - x), gamma<T>(k));
}

// The float64 tolerance of a kernel whose differences from the CPU are its
// order of summation only: 2^-40 of the result's scale (about 8000 ulp).
// Reordering moves such results by a few hundred ulp here; a term computed in
// float32 by mistake would move them by 2^-24, a wrong index or term by O(1).
inline double float64_rounding_level(double scale) { return std::ldexp(scale, -40); }

template <typename T>
std::vector<T> normal_vector(size_t size, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<T> v(size);
  for (auto& e : v) e = static_cast<T>(normal(rng));
  return v;
}

template <typename T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

}  // namespace testing
}  // namespace see
