// The n synthetic points of one expanded row, as the fused SEE loss on the CPU
// makes them: draws from the Philox stream (or given), the frame by Cholesky
// QR with Gram-Schmidt as the fallback, the points normalised as the loss's
// rows (docs/method.md §3).
//
// Plain C++ on raw pointers, like the other *_kernels.h, so that the C++ tests
// and sanitizers reach it without ATen.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../philox_normal.h"
#include "cholesky_frame.h"
#include "expansion_kernels.h"

namespace see {
namespace cpu {

// Where the draws of one expanded row come from: rows of a given tensor, or
// elements [first, first + (n-1) D) of the Philox stream `seed`.
template <typename T>
struct DrawSource {
  const T* given;  // (n - 1) x D, or nullptr
  uint64_t seed, first;
};

SEE_ISA_BEGIN

// The n synthetic points (n x D, into `out`), normalised as the loss's rows, of
// the unit source z_unit about the unit proxy w_unit. The frame is
// orthonormalised by Cholesky QR, or by Gram-Schmidt with reorthogonalisation
// where Cholesky QR would lose accuracy (always so for a draw in the span of
// the frame, whose points are NaN: docs/method.md §3.2). Uses the scratch's
// frame, draws, gs_coef, pass_coef, prefix and gram.
template <typename T>
void expand_unit_source(const T* z_unit, const T* w_unit, int64_t n, int64_t D, const DrawSource<T>& draws,
                        const ExpansionBuffers<T>& scratch, T* out) {
  T* frame = scratch.frame;
  SourceGeometry<T> geo = frame_axes(z_unit, w_unit, D, frame);
  const int64_t m = n - 1;
  T* draw_rows = frame + 2 * D;
  if (draws.given != nullptr)
    std::copy(draws.given, draws.given + m * D, draw_rows);
  else
    philox_normal_fill<T>(draws.seed, draws.first, m * D, draw_rows);
  if (!cholesky_frame(frame, 2, n + 1, D, scratch.gram)) {
    std::copy(draw_rows, draw_rows + m * D, scratch.draws);
    geo.draw_in_span = gram_schmidt_draws(scratch.draws, n, D, frame, scratch.gs_coef, scratch.pass_coef);
  }
  emit_points(geo, frame, n, D, out, scratch.prefix);
  // Unit to rounding only if z_unit is: x / sqrt(|x|^2 + eps) falls short of 1
  // for short x. The loss normalises its rows, and so do these (still in cache).
  for (int64_t k = 0; k < n; ++k) normalize_row(out + k * D, out + k * D, D);
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
