// exp(x) for the hot loops of the loss, in a form compilers vectorise (docs/method.md §1).
//
// std::exp is a library call that blocks vectorisation of the loops over the
// N x C similarity matrix, which dominate the loss after the matrix products.
// For float this is a Cody-Waite reduction to |r| <= ln2/2 and a degree-7
// Taylor polynomial (truncation 5e-9, below half an ulp), scaled by 2^k through
// the exponent bits: within 2 ulp of exp over the normal range (tested). Inputs
// below the normal range return 0; the loss only feeds it values <= ~0. NaN
// returns NaN (a NaN cosine must reach the loss), without converting it to an
// integer on the way (undefined behaviour): selects, which vectorise.
// double keeps std::exp: float64 runs are for exactness, not speed.
#pragma once

#include <cmath>

#include "see_common.h"

namespace see {

SEE_ISA_BEGIN

SEE_HD float fast_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;  // ln 2 split so that k*kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kMin = -87.33654f;          // exp(kMin) is the smallest normal float
  constexpr float kMax = 88.72283f;
  const bool is_nan = x != x;
  const float clamped = is_nan ? 0.0f : (x < kMin ? kMin : (x > kMax ? kMax : x));
  const float k = (clamped * kLog2e + kRoundMagic) - kRoundMagic;
  float r = clamped - k * kLn2Hi;
  r = r - k * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // k in [-126, 128]; 2^128 is split in two so that the exponent field stays valid.
  const int32_t ki = static_cast<int32_t>(k);
  const int32_t half = ki >> 1;
  const float result = (p * bits_to_float((half + 127) << 23)) * bits_to_float((ki - half + 127) << 23);
  return is_nan ? x : (x < kMin ? 0.0f : result);
}

SEE_HD double fast_exp(double x) { return exp(x); }

SEE_ISA_END
}  // namespace see
