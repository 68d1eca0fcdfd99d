// Counter-based Gaussian noise, shared by the CPU and CUDA kernels: element i
// of the stream `seed` is a function of (seed, i) alone (see_cuda/noise.py is
// the definition). Philox4x32-10 of counter (i/4, 0) and key `seed` gives four
// 32-bit words; Box-Muller turns words (0, 1) and (2, 3) into two normals each.
//
// float64 draws follow the reference formula (library log, sin, cos), so they
// agree with it to a few ulp. float32 draws are the float64 values rounded
// once: float arithmetic cannot land within 1 ulp of that (r, cos θ and their
// product would each round), so r, cos θ and sin θ are computed in double, by
// polynomials accurate to 2^-42 that vectorise, and the products rounded.
// Host builds want -fno-math-errno, or sqrt keeps the loops scalar.
// The formulas: docs/method.md §5.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "see_common.h"

#if defined(SEE_HOST_AVX2_FMA)
#include <immintrin.h>
#endif

namespace see {

constexpr uint32_t kPhiloxMultiplier0 = 0xD2511F53u;
constexpr uint32_t kPhiloxMultiplier1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxKeyIncrement0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxKeyIncrement1 = 0xBB67AE85u;
constexpr int kPhiloxRounds = 10;

struct PhiloxWords {
  uint32_t w0, w1, w2, w3;
};

SEE_ISA_BEGIN

SEE_HD void philox_round(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t key0, uint32_t key1) {
  const uint64_t product0 = static_cast<uint64_t>(kPhiloxMultiplier0) * c0;
  const uint64_t product1 = static_cast<uint64_t>(kPhiloxMultiplier1) * c2;
  const uint32_t next0 = static_cast<uint32_t>(product1 >> 32) ^ c1 ^ key0;
  const uint32_t next2 = static_cast<uint32_t>(product0 >> 32) ^ c3 ^ key1;
  c1 = static_cast<uint32_t>(product1);
  c3 = static_cast<uint32_t>(product0);
  c0 = next0;
  c2 = next2;
}

SEE_HD PhiloxWords philox4x32_10(PhiloxWords counter, uint32_t key0, uint32_t key1) {
  for (int round = 0; round < kPhiloxRounds; ++round) {
    philox_round(counter.w0, counter.w1, counter.w2, counter.w3, key0, key1);
    key0 += kPhiloxKeyIncrement0;
    key1 += kPhiloxKeyIncrement1;
  }
  return counter;
}

// The words of group g of the stream: elements 4g .. 4g+3.
SEE_HD PhiloxWords philox_group_words(uint64_t seed, uint64_t group) {
  const PhiloxWords counter = {static_cast<uint32_t>(group), static_cast<uint32_t>(group >> 32), 0u, 0u};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

SEE_HD uint64_t double_to_bits(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
#endif
}

SEE_HD double bits_to_double(uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
#endif
}

// ---------------------------------------------------------------- float64 draws
// The reference formula, operation for operation: u = (w + 0.5)·2^-32 (exact),
// r = sqrt(-2 ln u_a), θ = 2π·u_b rounded to double.
SEE_HD void normal_pair(uint64_t word_a, uint64_t word_b, double& first, double& second) {
  constexpr double kTwoPi = 6.283185307179586;  // 2π rounded, as 2 * math.pi
  const double u_a = static_cast<double>(static_cast<uint32_t>(word_a)) * 0x1p-32 + 0x1p-33;
  const double u_b = static_cast<double>(static_cast<uint32_t>(word_b)) * 0x1p-32 + 0x1p-33;
  const double r = sqrt(-2.0 * log(u_a));
  const double theta = kTwoPi * u_b;
  first = r * cos(theta);
  second = r * sin(theta);
}

// ---------------------------------------------------------------- float32 draws
// A float32 draw uses the top 24 bits m of a word: u = (m + 0.5)·2^-24 =
// q·2^-25 with q = 2m + 1 (odd, 25 bits: exact in double, not in float).
// Words travel in the low half of 64-bit integers, and all integer work stays
// in 64-bit lanes: AVX2 converts neither int64 to double nor between lane
// widths without shuffles, so integers become doubles through their bits.
constexpr uint64_t kOneBits = 0x3FF0000000000000ull;       // 1.0
constexpr uint64_t kTwoPow52Bits = 0x4330000000000000ull;  // 2^52: its bits | k are 2^52 + k, k < 2^52

SEE_HD uint64_t odd_numerator(uint64_t word) { return ((word & 0xFFFFFFFFu) >> 7) | 1u; }

// -2 ln(q·2^-25), relative error below 2^-44. u = 2^e·m with m in [√½, √2);
// ln m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.172: 2s + s·z·P(z), z = s², P
// fitted to (2 atanh(s) - 2s)/(s z) by scripts/fit_normal_polynomials.py.
// Evaluated in t = -4s: -2 ln m = t + t·w·P(w/16)/32, w = t², so that the
// factors -2 fold into exact power-of-two scalings of the coefficients.
SEE_HD double minus_two_log(uint64_t q) {
  constexpr uint64_t kSqrtHalfBits = 0x3FE6A09E667F3BCDull;  // √½
  constexpr uint64_t kExponentBias = 64;                     // keeps the shifted difference non-negative
  constexpr double kMinusTwoLn2 = -2.0 * 0.6931471805599453;
  constexpr double kP0 = 0.66666666675994462093, kP1 = 0.3999999557333158682, kP2 = 0.28572113256085013287,
                   kP3 = 0.22176045900998711318, kP4 = 0.19585916874321049948;
  const uint64_t bits = double_to_bits(bits_to_double(kOneBits | (q << 27)) - 1.0);  // u, exactly
  const uint64_t biased_exponent = (bits + ((kExponentBias << 52) - kSqrtHalfBits)) >> 52;
  const double m = bits_to_double(bits - (biased_exponent << 52) + (kExponentBias << 52));
  const double e = bits_to_double(kTwoPow52Bits | biased_exponent) - (0x1p52 + static_cast<double>(kExponentBias));
  const double t = fma(m, -4.0, 4.0) / (m + 1.0);  // -4(m - 1) is exact (Sterbenz)
  const double w = t * t;
  double p = kP4 * 0x1p-21;
  p = fma(p, w, kP3 * 0x1p-17);
  p = fma(p, w, kP2 * 0x1p-13);
  p = fma(p, w, kP1 * 0x1p-9);
  p = fma(p, w, kP0 * 0x1p-5);
  return fma(e, kMinusTwoLn2, fma(t * w, p, t));
}

// cos and sin of θ = 2π·q·2^-25, relative error below 2^-42. The reduction is
// exact: 4u = q·2^-23 = j + a·2^-23 with j the nearest integer (the quadrant,
// 0..4) and a an integer, |a| < 2^22, so θ = j·π/2 + x, x = a·k, k = π·2^-24,
// |x| < π/4. With S and C fitted to sin x = x + x³·S(x²), cos x = 1 - x²/2 +
// x⁴·C(x²), the polynomials are evaluated in t = a² (exact), k folded into
// their coefficients.
SEE_HD void turn_cos_sin(uint64_t q, double& cos_theta, double& sin_theta) {
  constexpr double k = 3.14159265358979323846 * 0x1p-24, k2 = k * k;
  constexpr double kS0 = -0.16666666666629276205, kS1 = 0.0083333333249384410575, kS2 = -0.00019841263668450766998,
                   kS3 = 2.755532902340848293e-6, kS4 = -2.4759792220946985193e-8;
  constexpr double kC0 = 0.041666666617633623314, kC1 = -0.0013888883370975610802, kC2 = 0.000024799431579181645896,
                   kC3 = -2.7203718518261260858e-7;
  const uint64_t shifted = q + (1u << 22);
  // a + 2^22 = shifted mod 2^23, in [0, 2^23): to double through its bits.
  const double a = bits_to_double(kTwoPow52Bits | (shifted & ((1u << 23) - 1))) - (0x1p52 + 0x1p22);
  const double t = a * a;
  double sin_p = kS4 * (k * k2 * k2 * k2 * k2 * k2);
  sin_p = fma(sin_p, t, kS3 * (k * k2 * k2 * k2 * k2));
  sin_p = fma(sin_p, t, kS2 * (k * k2 * k2 * k2));
  sin_p = fma(sin_p, t, kS1 * (k * k2 * k2));
  sin_p = fma(sin_p, t, kS0 * (k * k2));
  const double sin_x = a * fma(sin_p, t, k);
  double cos_p = kC3 * (k2 * k2 * k2 * k2 * k2);
  cos_p = fma(cos_p, t, kC2 * (k2 * k2 * k2 * k2));
  cos_p = fma(cos_p, t, kC1 * (k2 * k2 * k2));
  cos_p = fma(cos_p, t, kC0 * (k2 * k2));
  cos_p = fma(cos_p, t, -0.5 * k2);
  const double cos_x = fma(cos_p, t, 1.0);
  // Rotate (cos x, sin x) by j quarter turns; j = 4 is a full turn.
  const uint64_t quadrant = shifted >> 23;
  const bool odd = (quadrant & 1) != 0;
  const double along = odd ? sin_x : cos_x;
  const double across = odd ? cos_x : sin_x;
  cos_theta = ((quadrant + 1) & 2) ? -along : along;
  sin_theta = (quadrant & 2) ? -across : across;
}

// The float64 Box-Muller pair of the words' top 24 bits, rounded once to float.
SEE_HD void normal_pair(uint64_t word_a, uint64_t word_b, float& first, float& second) {
  const double r = sqrt(minus_two_log(odd_numerator(word_a)));
  double cos_theta, sin_theta;
  turn_cos_sin(odd_numerator(word_b), cos_theta, sin_theta);
  first = static_cast<float>(r * cos_theta);
  second = static_cast<float>(r * sin_theta);
}

// ---------------------------------------------------------------- the stream
// Element `index` of the stream `seed`; the scalar form, for CUDA threads and tests.
template <typename T>
SEE_HD T philox_normal_at(uint64_t seed, uint64_t index) {
  const PhiloxWords words = philox_group_words(seed, index / 4);
  const bool second_pair = (index & 2) != 0;
  T first, second;
  normal_pair(second_pair ? words.w2 : words.w0, second_pair ? words.w3 : words.w1, first, second);
  return (index & 1) ? second : first;
}

// Elements 4g .. 4g+3 of the stream.
template <typename T>
SEE_HD void philox_normal_group(uint64_t seed, uint64_t group, T* values) {
  const PhiloxWords words = philox_group_words(seed, group);
  normal_pair(words.w0, words.w1, values[0], values[1]);
  normal_pair(words.w2, words.w3, values[2], values[3]);
}

#if !defined(__CUDACC__)
// ---------------------------------------------------------------- host fill
namespace philox_detail {

constexpr int kBatchGroups = 64;  // 256 elements: the words stay in L1

// The words of groups first_group + i, i < kBatchGroups, in the low halves of
// 64-bit integers (high halves hold garbage), one array per word so that the
// Box-Muller loop vectorises across groups.
using BatchWords = uint64_t[4][kBatchGroups];

#if defined(SEE_HOST_AVX2_FMA)
// GCC does not see that the products are 32 x 32 -> 64 bits and emulates a
// 64-bit multiply by shifts and adds; vpmuludq is the whole product. Lanes are
// 64 bits wide: the multiplications read only the low halves, and the high
// halves, never cleared, never reach a low half.
inline void batch_words(uint64_t seed, uint64_t first_group, BatchWords& words) {
  constexpr int kVectors = 2;  // independent vectors per step, for instruction-level parallelism
  const __m256i multiplier0 = _mm256_set1_epi64x(kPhiloxMultiplier0);
  const __m256i multiplier1 = _mm256_set1_epi64x(kPhiloxMultiplier1);
  const __m256i lane_offsets = _mm256_set_epi64x(3, 2, 1, 0);
  for (int i = 0; i < kBatchGroups; i += 4 * kVectors) {
    __m256i c0[kVectors], c1[kVectors], c2[kVectors], c3[kVectors];
    for (int v = 0; v < kVectors; ++v) {
      c0[v] = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<int64_t>(first_group + i + 4 * v)), lane_offsets);
      c1[v] = _mm256_srli_epi64(c0[v], 32);
      c2[v] = c3[v] = _mm256_setzero_si256();
    }
    uint32_t key0 = static_cast<uint32_t>(seed), key1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < kPhiloxRounds; ++round) {
      const __m256i round_key0 = _mm256_set1_epi64x(key0), round_key1 = _mm256_set1_epi64x(key1);
      for (int v = 0; v < kVectors; ++v) {
        const __m256i product0 = _mm256_mul_epu32(c0[v], multiplier0);
        const __m256i product1 = _mm256_mul_epu32(c2[v], multiplier1);
        c0[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(product1, 32), c1[v]), round_key0);
        c2[v] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(product0, 32), c3[v]), round_key1);
        c1[v] = product1;
        c3[v] = product0;
      }
      key0 += kPhiloxKeyIncrement0;
      key1 += kPhiloxKeyIncrement1;
    }
    for (int v = 0; v < kVectors; ++v) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&words[0][i + 4 * v]), c0[v]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&words[1][i + 4 * v]), c1[v]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&words[2][i + 4 * v]), c2[v]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&words[3][i + 4 * v]), c3[v]);
    }
  }
}
#else
inline void batch_words(uint64_t seed, uint64_t first_group, BatchWords& words) {
  for (int i = 0; i < kBatchGroups; ++i) {
    const PhiloxWords group_words = philox_group_words(seed, first_group + static_cast<uint64_t>(i));
    words[0][i] = group_words.w0;
    words[1][i] = group_words.w1;
    words[2][i] = group_words.w2;
    words[3][i] = group_words.w3;
  }
}
#endif

// In passes (radii, angles, interleaved store): a few percent faster than one
// loop doing all of it.
inline void batch_normals(const BatchWords& words, float* values) {
  double radius[2][kBatchGroups];
  for (int pair = 0; pair < 2; ++pair) {
    SEE_PRAGMA(omp simd)
    for (int i = 0; i < kBatchGroups; ++i) radius[pair][i] = sqrt(minus_two_log(odd_numerator(words[2 * pair][i])));
  }
  float normals[4][kBatchGroups];
  for (int pair = 0; pair < 2; ++pair) {
    SEE_PRAGMA(omp simd)
    for (int i = 0; i < kBatchGroups; ++i) {
      double cos_theta, sin_theta;
      turn_cos_sin(odd_numerator(words[2 * pair + 1][i]), cos_theta, sin_theta);
      normals[2 * pair][i] = static_cast<float>(radius[pair][i] * cos_theta);
      normals[2 * pair + 1][i] = static_cast<float>(radius[pair][i] * sin_theta);
    }
  }
  SEE_PRAGMA(omp simd)
  for (int i = 0; i < kBatchGroups; ++i) {
    values[4 * i] = normals[0][i];
    values[4 * i + 1] = normals[1][i];
    values[4 * i + 2] = normals[2][i];
    values[4 * i + 3] = normals[3][i];
  }
}

inline void batch_normals(const BatchWords& words, double* values) {
  for (int i = 0; i < kBatchGroups; ++i) {
    normal_pair(words[0][i], words[1][i], values[4 * i], values[4 * i + 1]);
    normal_pair(words[2][i], words[3][i], values[4 * i + 2], values[4 * i + 3]);
  }
}

}  // namespace philox_detail

// Writes elements [first, first + count) of the stream `seed` to out[0 .. count).
// Single-threaded: callers run it inside their own parallel loops.
template <typename T>
void philox_normal_fill(uint64_t seed, uint64_t first, int64_t count, T* out) {
  using philox_detail::kBatchGroups;
  constexpr uint64_t kBatchSize = 4 * kBatchGroups;
  philox_detail::BatchWords words;
  T batch[kBatchSize];
  const uint64_t end = first + static_cast<uint64_t>(count);
  for (uint64_t batch_first = first - first % 4; batch_first < end; batch_first += kBatchSize) {
    const uint64_t lo = batch_first > first ? batch_first : first;
    const uint64_t hi = end - batch_first < kBatchSize ? end : batch_first + kBatchSize;
    const bool whole = lo == batch_first && hi == batch_first + kBatchSize;
    T* values = whole ? out + (batch_first - first) : batch;  // edges go through the local batch
    philox_detail::batch_words(seed, batch_first / 4, words);
    philox_detail::batch_normals(words, values);
    if (!whole) std::memcpy(out + (lo - first), batch + (lo - batch_first), (hi - lo) * sizeof(T));
  }
}
#endif  // !defined(__CUDACC__)

SEE_ISA_END
}  // namespace see
