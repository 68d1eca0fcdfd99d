// CPU loops of the softmax-family losses over one chunk of classes: plain C++
// on raw pointers (no ATen), so that the C++ tests and sanitizers run them.
// The chunk's cosines are rows x classes (row-major): everything a row needs
// of the chunk, its logits, is one contiguous run.
#pragma once

#include <cstdint>

#include "../softmax_family.h"

namespace see {
namespace cpu {

// One chunk of classes: the global classes [first, first + count) against N rows with global labels.
template <typename T>
struct SoftmaxChunk {
  T* S;  // N x count cosines; the gradient pass turns them into dL/dS
  int64_t N, count, first;
  const int64_t* labels;
  LogitMap map;
};

// Per row, what the first pass gathers: its LSE as (max, sum) over the classes seen so far,
// and its target's logit (found: whether the target was among them).
struct RowStats {
  double* max;
  double* sum;
  double* target_logit;
  double* found;
};

SEE_ISA_BEGIN

// Row i of the chunk merged into its running (max, sum) and, if its target is here, its target logit.
template <typename T>
void softmax_row_stats(const SoftmaxChunk<T>& p, int64_t i, const RowStats& rows) {
  const T* s = p.S + i * p.count;
  const int64_t target = p.labels[i] - p.first;  // outside [0, count): not in this chunk
  double top = -INFINITY;
  bool nan = false;
  for (int64_t c = 0; c < p.count; ++c) {
    const double z = row_logit(static_cast<double>(s[c]), c == target, p.map);
    nan |= z != z;
    top = fmax(top, z);
  }
  double sum = 0.0;
  for (int64_t c = 0; c < p.count; ++c) sum += exp(row_logit(static_cast<double>(s[c]), c == target, p.map) - top);
  if (nan) top = sum = NAN;  // fmax skips NaN: a NaN logit makes the row NaN
  lse_merge(rows.max[i], rows.sum[i], top, sum);
  if (target >= 0 && target < p.count) {
    rows.target_logit[i] = row_logit(static_cast<double>(s[target]), true, p.map);
    rows.found[i] = 1.0;
  }
}

// Row i of the chunk's cosines replaced by d loss / d s, given the row's final lse and weight.
template <typename T>
void softmax_row_grad(const SoftmaxChunk<T>& p, int64_t i, const double* lse, const double* weight) {
  T* s = p.S + i * p.count;
  const int64_t target = p.labels[i] - p.first;
  for (int64_t c = 0; c < p.count; ++c) {
    const double cosine = static_cast<double>(s[c]);
    const bool is_target = c == target;
    s[c] = static_cast<T>(cosine_grad(cosine, row_logit(cosine, is_target, p.map), is_target, lse[i], weight[i],
                                      p.map));
  }
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
