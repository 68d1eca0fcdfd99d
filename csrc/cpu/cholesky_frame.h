// Orthonormal expansion frames by Cholesky QR, the fast path of the fused loss (docs/method.md §3.2).
//
// The draws g_1 .. g_{n-1} in the frame rows F = [ŵ, u, g_1 .. g_{n-1}] are
// orthonormalised all at once: the Gram matrix A = F F^T (with ŵ, u taken as
// orthonormal), its Cholesky factor A = L L^T, then F <- L^{-1} F by forward
// substitution. In exact arithmetic this is the Gram-Schmidt frame; here both
// passes over the draws run in register tiles (4 x 2 dot products, 4 x 4
// updates), where Gram-Schmidt streams one vector at a time.
//
// Cholesky QR loses orthogonality like eps * cond(F)^2, as one pass of
// classical Gram-Schmidt does, and the same guard applies: when a draw keeps
// less than half its squared length off the earlier rows (L_jj^2 < A_jj / 2),
// `cholesky_frame` reports failure and the caller takes Gram-Schmidt with
// reorthogonalisation instead. Gaussian draws in D >> n dimensions keep almost
// all of their length, so the fallback is for small D and contrived noise.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../see_common.h"
#include "normalize.h"

#if defined(SEE_HOST_AVX2_FMA)
#include <immintrin.h>
#endif

namespace see {
namespace cpu {
SEE_ISA_BEGIN

// out[i][j] = a_i . b_j for four rows a and two rows b (each D long, rows D
// apart): 8 sums, few enough to stay in registers with their operands.
template <typename T>
inline void dot_tile_4x2(const T* a, const T* b, int64_t D, double out[4][2]) {
  const T *a0 = a, *a1 = a + D, *a2 = a + 2 * D, *a3 = a + 3 * D, *b0 = b, *b1 = b + D;
  T s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
  SEE_PRAGMA(omp simd reduction(+ : s00, s01, s10, s11, s20, s21, s30, s31))
  for (int64_t d = 0; d < D; ++d) {
    const T y0 = b0[d], y1 = b1[d];
    s00 += a0[d] * y0, s01 += a0[d] * y1, s10 += a1[d] * y0, s11 += a1[d] * y1;
    s20 += a2[d] * y0, s21 += a2[d] * y1, s30 += a3[d] * y0, s31 += a3[d] * y1;
  }
  out[0][0] = s00, out[0][1] = s01, out[1][0] = s10, out[1][1] = s11;
  out[2][0] = s20, out[2][1] = s21, out[3][0] = s30, out[3][1] = s31;
}

#if defined(SEE_HOST_AVX2_FMA)
// The float tile with AVX2 intrinsics: compilers keep omp-simd reductions in
// memory between iterations here, which costs this loop a third of its speed.
inline float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

template <>
inline void dot_tile_4x2<float>(const float* a, const float* b, int64_t D, double out[4][2]) {
  __m256 acc[4][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    const __m256 y0 = _mm256_loadu_ps(b + d), y1 = _mm256_loadu_ps(b + D + d);
    for (int i = 0; i < 4; ++i) {
      const __m256 x = _mm256_loadu_ps(a + i * D + d);
      acc[i][0] = _mm256_fmadd_ps(x, y0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, y1, acc[i][1]);
    }
  }
  for (int i = 0; i < 4; ++i) {
    float tail0 = 0.0f, tail1 = 0.0f;
    for (int64_t e = d; e < D; ++e) tail0 += a[i * D + e] * b[e], tail1 += a[i * D + e] * b[D + e];
    out[i][0] = horizontal_sum(acc[i][0]) + tail0;
    out[i][1] = horizontal_sum(acc[i][1]) + tail1;
  }
}
#endif

// The lower triangle of A = F F^T (rows x rows, row-major, double) for the
// first `rows` rows of F, in 4 x 2 tiles (the diagonal tiles compute a few
// entries above the diagonal, which are not stored). Entries above the
// diagonal are left as they are.
template <typename T>
void gram_lower(const T* F, int64_t rows, int64_t D, double* A) {
  int64_t i0 = 0;
  for (; i0 + 4 <= rows; i0 += 4) {
    for (int64_t j0 = 0; j0 < i0 + 4; j0 += 2) {
      double tile[4][2];
      dot_tile_4x2(F + i0 * D, F + j0 * D, D, tile);
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 2 && j0 + j <= i0 + i; ++j) A[(i0 + i) * rows + j0 + j] = tile[i][j];
    }
  }
  for (int64_t i = i0; i < rows; ++i)  // the last rows % 4 rows
    for (int64_t j = 0; j <= i; ++j) A[i * rows + j] = dot(F + i * D, F + j * D, D);
}

// In-place Cholesky factor of the lower triangle of A (rows x rows). Returns
// false when a pivot falls below half of that row's squared length A_jj (the
// reorthogonalisation criterion above) or is not positive.
inline bool cholesky_guarded(double* A, int64_t rows) {
  for (int64_t j = 0; j < rows; ++j) {
    double* Lj = A + j * rows;
    const double length_sq = Lj[j];
    double pivot = length_sq;
    for (int64_t k = 0; k < j; ++k) pivot -= Lj[k] * Lj[k];
    if (!(pivot > 0.5 * length_sq) || !(pivot > 0.0)) return false;
    Lj[j] = std::sqrt(pivot);
    for (int64_t i = j + 1; i < rows; ++i) {
      double* Li = A + i * rows;
      double acc = Li[j];
      for (int64_t k = 0; k < j; ++k) acc -= Li[k] * Lj[k];
      Li[j] = acc / Lj[j];
    }
  }
  return true;
}

// y_i -= sum_j c[i][j] x_j for four rows y and four rows x.
template <typename T>
inline void update_tile_4x4(T* y, const T* x, const T c[4][4], int64_t D) {
  T *y0 = y, *y1 = y + D, *y2 = y + 2 * D, *y3 = y + 3 * D;
  const T *x0 = x, *x1 = x + D, *x2 = x + 2 * D, *x3 = x + 3 * D;
  SEE_PRAGMA(omp simd)
  for (int64_t d = 0; d < D; ++d) {
    const T v0 = x0[d], v1 = x1[d], v2 = x2[d], v3 = x3[d];
    y0[d] -= (c[0][0] * v0 + c[0][1] * v1) + (c[0][2] * v2 + c[0][3] * v3);
    y1[d] -= (c[1][0] * v0 + c[1][1] * v1) + (c[1][2] * v2 + c[1][3] * v3);
    y2[d] -= (c[2][0] * v0 + c[2][1] * v1) + (c[2][2] * v2 + c[2][3] * v3);
    y3[d] -= (c[3][0] * v0 + c[3][1] * v1) + (c[3][2] * v2 + c[3][3] * v3);
  }
}

// y_i -= sum_{j<R} c[i][j] x_j for four rows y and R <= 3 rows x (what is
// left of the finished rows after whole 4 x 4 tiles).
template <typename T, int R>
inline void update_tile_4xR(T* y, const T* x, const T c[4][4], int64_t D) {
  T *y0 = y, *y1 = y + D, *y2 = y + 2 * D, *y3 = y + 3 * D;
  SEE_PRAGMA(omp simd)
  for (int64_t d = 0; d < D; ++d) {
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int j = 0; j < R; ++j) {
      const T v = x[j * D + d];
      s0 += c[0][j] * v, s1 += c[1][j] * v, s2 += c[2][j] * v, s3 += c[3][j] * v;
    }
    y0[d] -= s0, y1[d] -= s1, y2[d] -= s2, y3[d] -= s3;
  }
}

// y -= sum_j c[j] x_j for one row y and four rows x.
template <typename T>
inline void update_tile_1x4(T* y, const T* x, const T c[4], int64_t D) {
  const T *x0 = x, *x1 = x + D, *x2 = x + 2 * D, *x3 = x + 3 * D;
  SEE_PRAGMA(omp simd)
  for (int64_t d = 0; d < D; ++d) y[d] -= (c[0] * x0[d] + c[1] * x1[d]) + (c[2] * x2[d] + c[3] * x3[d]);
}

// F <- L^{-1} F for rows [first, rows), L the factor from cholesky_guarded and
// rows [0, first) already orthonormal: row q becomes
// (f_q - sum_{l<q} L_ql f_l) / L_qq, four rows at a time.
template <typename T>
void solve_rows_in_place(T* F, const double* L, int64_t first, int64_t rows, int64_t D) {
  for (int64_t q0 = first; q0 < rows; q0 += 4) {
    const int64_t tq = std::min<int64_t>(4, rows - q0);
    int64_t l0 = 0;
    for (; l0 + 4 <= q0; l0 += 4) {  // finished rows, whole tiles
      if (tq == 4) {
        T c[4][4];
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j) c[i][j] = static_cast<T>(L[(q0 + i) * rows + l0 + j]);
        update_tile_4x4(F + q0 * D, F + l0 * D, c, D);
      } else {
        for (int64_t q = q0; q < q0 + tq; ++q) {
          T c[4];
          for (int j = 0; j < 4; ++j) c[j] = static_cast<T>(L[q * rows + l0 + j]);
          update_tile_1x4(F + q * D, F + l0 * D, c, D);
        }
      }
    }
    const int64_t left = q0 - l0;  // finished rows after the whole tiles
    if (tq == 4 && left > 0) {
      T c[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < left; ++j) c[i][j] = static_cast<T>(L[(q0 + i) * rows + l0 + j]);
      if (left == 1) update_tile_4xR<T, 1>(F + q0 * D, F + l0 * D, c, D);
      if (left == 2) update_tile_4xR<T, 2>(F + q0 * D, F + l0 * D, c, D);
      if (left == 3) update_tile_4xR<T, 3>(F + q0 * D, F + l0 * D, c, D);
      l0 = q0;
    }
    for (int64_t q = q0; q < q0 + tq; ++q) {  // the rest: finished rows left over, then the tile's triangle
      T* fq = F + q * D;
      for (int64_t l = l0; l < q; ++l) {
        const T c = static_cast<T>(L[q * rows + l]);
        const T* fl = F + l * D;
        SEE_PRAGMA(omp simd)
        for (int64_t d = 0; d < D; ++d) fq[d] -= c * fl[d];
      }
      const T inverse = static_cast<T>(1.0 / L[q * rows + q]);
      SEE_PRAGMA(omp simd)
      for (int64_t d = 0; d < D; ++d) fq[d] *= inverse;
    }
  }
}

// Orthonormalises rows [first, rows) of F in place by Cholesky QR against the
// rows before them, which are taken as orthonormal as they are (ŵ and u, as
// Gram-Schmidt takes them); `gram` is rows x rows of scratch. Returns false,
// leaving F untouched, when the guard trips (then use Gram-Schmidt with
// reorthogonalisation).
template <typename T>
bool cholesky_frame(T* F, int64_t first, int64_t rows, int64_t D, double* gram) {
  gram_lower(F, rows, D, gram);
  for (int64_t i = 0; i < first; ++i)
    for (int64_t j = 0; j <= i; ++j) gram[i * rows + j] = i == j ? 1.0 : 0.0;
  if (!cholesky_guarded(gram, rows)) return false;
  solve_rows_in_place(F, gram, first, rows, D);
  return true;
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
