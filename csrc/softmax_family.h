// Per-entry math of the softmax-family losses (docs/method.md §7), shared by
// the CPU and CUDA kernels.
//
// Row i's logit of class c is z_ic = scale * s_ic + bias, and for its target
// class scale * f(s_iy) + bias, f the margin of LogitMap. The row's term is
// LSE_c(z_ic) - z_iy; its LSE is taken online over chunks of classes as a
// running (max, sum of exp(z - max)), so memory is O(rows x chunk) for any
// number of classes, and (max, sum) pairs of disjoint sets of classes merge
// (lse_merge): the shards of a sharded loss exchange O(rows) numbers.
// dTerm/dz_ic = p_ic - [c = y_i], p_ic = exp(z_ic - LSE_i); through the map
// a factor scale, times f'(s_iy) on the target.
#pragma once

#include <cmath>
#include <cstdint>

#include "fast_exp.h"
#include "see_common.h"

namespace see {

// What the target's cosine becomes before the scale (see_cuda/loss_settings.py).
enum MarginKind : int64_t { kNoMargin = 0, kCosineMargin = 1, kAngularMargin = 2 };

// The logits as an affine map of the cosine, with the margin of the target.
struct LogitMap {
  double scale, bias;
  int64_t margin_kind;
  double margin;  // kCosineMargin: s - margin; kAngularMargin: cos(acos(s) + margin), margin in radians
};

SEE_ISA_BEGIN

// f(s): ArcFace's cos(acos s + m) = s cos m - sqrt(1 - s^2) sin m while acos s <= pi - m
// (s >= -cos m), then PML's continuation s - m sin m, which keeps the logit falling.
SEE_HD double target_margin(double s, const LogitMap& map) {
  if (map.margin_kind == kCosineMargin) return s - map.margin;
  if (map.margin_kind != kAngularMargin) return s;
  const double c = cos(map.margin), sn = sin(map.margin);
  if (!(s >= -c)) return s - map.margin * sn;  // NaN goes on here as NaN
  const double sine = sqrt(fmax(1.0 - s * s, 0.0));
  return s * c - sine * sn;
}

// f'(s); unbounded as s -> 1 for ArcFace, as the derivative of acos.
SEE_HD double target_margin_slope(double s, const LogitMap& map) {
  if (map.margin_kind != kAngularMargin) return 1.0;
  const double c = cos(map.margin), sn = sin(map.margin);
  if (!(s >= -c)) return 1.0;
  return c + s * sn / sqrt(fmax(1.0 - s * s, 0.0));
}

SEE_HD double row_logit(double s, bool is_target, const LogitMap& map) {
  return map.scale * (is_target ? target_margin(s, map) : s) + map.bias;
}

// (max, sum) of another set of logits merged into (max, sum); an empty set has sum 0.
// A NaN max or sum stays NaN.
SEE_HD void lse_merge(double& max, double& sum, double other_max, double other_sum) {
  if (other_sum == 0.0) return;
  if (sum == 0.0) {
    max = other_max;
    sum = other_sum;
    return;
  }
  const double top = fmax(max, other_max);
  sum = sum * exp(max - top) + other_sum * exp(other_max - top);
  max = (max != max || other_max != other_max) ? max + other_max : top;
}

// The entries of a row are done in T, vectorised: the target's cosine is first
// replaced by f(s_iy) (rounded to T), so that every entry's logit is the same
// affine map scale * s + bias; exponentials use fast_exp (within 2 ulp).

// exp(z - shift) of an entry's logit z = scale * s + bias.
template <typename T>
SEE_HD T entry_exponential(T s, T scale, T bias, T shift) {
  return fast_exp(scale * s + bias - shift);
}

// d loss / d s of an entry that is not the row's target: weight * scale * p, p = exp(z - lse).
template <typename T>
SEE_HD T other_class_grad(T s, T scale, T bias, T lse, T weight_scale) {
  return weight_scale * fast_exp(scale * s + bias - lse);
}

// d loss / d s_ic of a row with logit z and log-sum-exp lse, weight w (1/B, or lambda/M).
SEE_HD double cosine_grad(double s, double z, bool is_target, double lse, double weight, const LogitMap& map) {
  const double p = exp(z - lse);
  return is_target ? weight * (p - 1.0) * map.scale * target_margin_slope(s, map) : weight * p * map.scale;
}

SEE_ISA_END
}  // namespace see
