// Per-batch pieces of the fused SEE loss on the CPU: which rows are expanded,
// and the n synthetic points of one expanded row.
//
// Plain C++ on raw pointers, like the other *_kernels.h, so that the C++ tests
// and sanitizers reach them without ATen.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "../philox_normal.h"
#include "cholesky_frame.h"
#include "expansion_kernels.h"

namespace see {
namespace cpu {

// The rows to expand given their positive cosines s (SEE_METHOD.md §2), as
// see_cuda.selection.select_for_expansion: with num_selected >= 0 the
// num_selected largest, largest first and equal cosines in batch order;
// otherwise every row with s >= threshold, in batch order (compared in T, as
// PyTorch compares a tensor with a Python float).
template <typename T>
std::vector<int64_t> select_rows(const T* s, int64_t B, int64_t num_selected, double threshold) {
  std::vector<int64_t> rows;
  if (num_selected >= 0) {
    rows.resize(B);
    std::iota(rows.begin(), rows.end(), int64_t(0));
    std::stable_sort(rows.begin(), rows.end(), [s](int64_t a, int64_t b) { return s[a] > s[b]; });
    rows.resize(std::min(num_selected, B));
  } else {
    const T bound = static_cast<T>(threshold);
    for (int64_t i = 0; i < B; ++i)
      if (s[i] >= bound) rows.push_back(i);
  }
  return rows;
}

// Scratch of one thread: a frame, the Cholesky factor, and what the
// Gram-Schmidt fallback needs.
template <typename T>
struct ExpansionScratch {
  std::vector<T> frame, draws, gs_coef, pass_coef, prefix;
  std::vector<double> gram;
  ExpansionScratch(int64_t n, int64_t D)
      : frame((n + 1) * D), draws((n - 1) * D), gs_coef((n + 1) * (n + 1)), pass_coef(n + 1), prefix(D),
        gram((n + 1) * (n + 1)) {}
};

// Where the draws of one expanded row come from: rows of a given tensor, or
// elements [first, first + (n-1) D) of the Philox stream `seed`.
template <typename T>
struct DrawSource {
  const T* given;  // (n - 1) x D, or nullptr
  uint64_t seed, first;
};

// The n synthetic points (n x D, into `out`), normalised as the loss's rows, of
// the unit source z_unit about the unit proxy w_unit. The frame is orthonormalised by Cholesky QR, or by
// Gram-Schmidt with reorthogonalisation where Cholesky QR would lose accuracy.
template <typename T>
void expand_unit_source(const T* z_unit, const T* w_unit, int64_t n, int64_t D, const DrawSource<T>& draws,
                        ExpansionScratch<T>& scratch, T* out) {
  T* frame = scratch.frame.data();
  const SourceFrame<T> geo = frame_axes(z_unit, w_unit, D, frame);
  const int64_t m = n - 1;
  T* draw_rows = frame + 2 * D;
  if (draws.given != nullptr)
    std::copy(draws.given, draws.given + m * D, draw_rows);
  else
    philox_normal_fill<T>(draws.seed, draws.first, m * D, draw_rows);
  if (!cholesky_frame(frame, 2, n + 1, D, scratch.gram.data())) {
    std::copy(draw_rows, draw_rows + m * D, scratch.draws.data());
    gram_schmidt_draws(scratch.draws.data(), n, D, frame, scratch.gs_coef.data(), scratch.pass_coef.data());
  }
  emit_points(geo, frame, n, D, out, scratch.prefix.data());
  // Unit to rounding only if z_unit is: x / sqrt(|x|^2 + eps) falls short of 1
  // for short x. The loss normalises its rows, and so do these (still in cache).
  for (int64_t k = 0; k < n; ++k) normalize_row(out + k * D, out + k * D, D);
}

}  // namespace cpu
}  // namespace see
