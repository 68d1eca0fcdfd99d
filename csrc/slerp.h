// Scalar weights of spherical linear interpolation and of its derivatives.
//
// slerp(â, b̂, t) = c1 â + c2 b̂ with c1 = sin((1-t)θ)/sin θ, c2 = sin(tθ)/sin θ.
// Written with sinc(x) = sin(x)/x so that θ -> 0 has no 0/0:
//   c2 = t sinc(tθ)/sinc(θ).
// The derivatives need (dc/dθ)/sin θ, which with sinc'(x) = -x q(x),
// q(x) = (sin x - x cos x)/x^3, becomes
//   (dc2/dθ)/sin θ = t (sinc(tθ) q(θ) - t^2 q(tθ) sinc(θ)) / sinc(θ)^3
// (and the same with 1 - t for c1): finite at θ = 0, where it is t(1 - t^2)/3.
#pragma once

#include <cmath>

#include "see_common.h"

namespace see {

SEE_ISA_BEGIN

template <typename T>
SEE_HD T sinc(T x) {
  return x == T(0) ? T(1) : sin(x) / x;
}

// q(x) = (sin x - x cos x) / x^3; its Taylor series below 0.5, where the
// difference would cancel (the first omitted term is below 3e-18 there).
template <typename T>
SEE_HD T sinc_slope(T x) {
  const T x2 = x * x;
  if (fabs(x) < T(0.5)) {
    T q = T(1.0 / 93405312000.0);
    q = q * x2 - T(1.0 / 518918400.0);
    q = q * x2 + T(1.0 / 3991680.0);
    q = q * x2 - T(1.0 / 45360.0);
    q = q * x2 + T(1.0 / 840.0);
    q = q * x2 - T(1.0 / 30.0);
    return q * x2 + T(1.0 / 3.0);
  }
  return (sin(x) - x * cos(x)) / (x2 * x);
}

// (dc/dθ)/sin θ for c = tau sinc(tau θ)/sinc(θ).
template <typename T>
SEE_HD T slerp_angle_weight(T tau, T theta) {
  const T st = sinc(theta);
  return tau * (sinc(tau * theta) * sinc_slope(theta) - tau * tau * sinc_slope(tau * theta) * st) / (st * st * st);
}

// The angle between unit vectors from the chords |â - b̂| and |â + b̂|:
// accurate near 0 and near π, where acos of the dot product is not.
template <typename T>
SEE_HD T angle_from_chords(T chord_minus, T chord_plus) {
  return T(2) * atan2(chord_minus, chord_plus);
}

// One coordinate of the tangent b̂ - cos(θ) â (norm sin θ), from the nearer
// chord so that it stays accurate relative to its size at both ends:
// 1 - cos θ = |â-b̂|²/2 when `near` (|â-b̂| <= |â+b̂|), 1 + cos θ = |â+b̂|²/2 otherwise;
// half_sq is that chord's square over 2.
template <typename T>
SEE_HD T slerp_tangent(T a, T b, T half_sq, bool near) {
  return near ? (b - a) + half_sq * a : (a + b) - half_sq * a;
}

SEE_ISA_END
}  // namespace see
