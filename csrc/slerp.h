// Scalar weights of spherical linear interpolation and of its derivatives.
//
// slerp(â, b̂, t) = cos(tθ) â + R T (docs/method.md §6), T the tangent from the
// nearer chord and R = sin(tθ)/sin θ, written with sinc(x) = sin(x)/x so that
// θ -> 0 has no 0/0:
//   R = t sinc(tθ)/sinc(θ).
// The derivatives need (dR/dθ)/sin θ, which with sinc'(x) = -x q(x),
// q(x) = (sin x - x cos x)/x^3, becomes
//   (dR/dθ)/sin θ = t (sinc(tθ) q(θ) - t^2 q(tθ) sinc(θ)) / sinc(θ)^3,
// finite at θ = 0, where it is t(1 - t^2)/3.
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

// The gradient of one row w.r.t. its unit rows â, b̂ and t, given g (the
// gradient w.r.t. the output), as coefficients:
//   ā = ga g + aa â + ab b̂,   b̄ = gb g + ba â + bb b̂,   t̄ = t_bar.
// It is the derivative of the formula the forward evaluates (the chords, θ,
// the tangent from the nearer chord, R), without taking |â| = |b̂| = 1: a row
// shorter than the normalisation's ε allows (a zero row, whose â is 0) gets the
// reference's gradient too, and a unit row loses no ε-sized term. Inputs: the
// row's t, θ, chords c- = |â - b̂|, c+ = |â + b̂| (c+ > 0: not the antipode),
// the tangent's half_sq and branch (slerp_tangent), G_a = g.â and G_T = g.T.
// With m = â - b̂, p = â + b̂ and dθ = (2 / (c-² + c+²)) (c+ dc- - c- dc+),
// θ̄ = -t sin(tθ) G_a + (dR/dθ) G_T reaches â and b̂ as A m - B p and
// -A m - B p, A = θ̄ c+ k / c-, B = θ̄ c- k / c+, k = 2 / (c-² + c+²); θ̄ / c- is
// formed as (θ̄/θ)(θ/c-), both finite as θ -> 0 (θ/c- -> 2/c+).
template <typename S>
struct SlerpRowGrad {
  S ga, aa, ab, gb, ba, bb, t_bar;
};

template <typename S>
SEE_HD SlerpRowGrad<S> slerp_row_grad(S t, S theta, S chord_minus, S chord_plus, S half_sq, bool near, S G_a, S G_T) {
  const S tt = t * theta, st = sinc(theta);
  const S R = t * sinc(tt) / st;
  const S theta_bar_over_theta = -t * t * sinc(tt) * G_a + slerp_angle_weight(t, theta) * st * G_T;
  const S k = S(2) / (chord_minus * chord_minus + chord_plus * chord_plus);
  const S theta_over_chord = chord_minus > S(0) ? theta / chord_minus : S(2) / chord_plus;
  const S A = theta_bar_over_theta * theta_over_chord * chord_plus * k;
  const S B = theta_bar_over_theta * theta * chord_minus / chord_plus * k;
  SlerpRowGrad<S> grad;
  grad.gb = R;
  if (near) {  // T = -m + half_sq â
    const S mu = R * G_a + A;
    grad.ga = cos(tt) + R * (half_sq - S(1));
    grad.aa = mu - B, grad.ab = -mu - B;
    grad.ba = -mu - B, grad.bb = mu - B;
  } else {  // T = p - half_sq â
    const S nu = R * G_a + B;
    grad.ga = cos(tt) + R * (S(1) - half_sq);
    grad.aa = A - nu, grad.ab = -A - nu;
    grad.ba = -A - nu, grad.bb = A - nu;
  }
  grad.t_bar = -theta * sin(tt) * G_a + cos(tt) * G_T / st;
  return grad;
}

SEE_ISA_END
}  // namespace see
