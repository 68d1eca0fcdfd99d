// CPU loops of the softmax-family losses (docs/method.md §7) over one chunk of classes: plain C++
// on raw pointers (no ATen), so that the C++ tests and sanitizers run them.
// The chunk's cosines are rows x classes (row-major): everything a row needs
// of the chunk, its logits, is one contiguous run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

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

// Sums of exponentials are taken in T over blocks of kSoftmaxExpBlock entries and the
// blocks added in double, as the Proxy-Anchor loops do (cpu/proxy_anchor_kernels.h).
constexpr int64_t kSoftmaxExpBlock = 256;

// Row i of the chunk merged into its running (max, sum) and, if its target is here, its target logit.
// The row's cosines are scratch afterwards (the target's is replaced by f(s_iy)).
template <typename T>
void softmax_row_stats(const SoftmaxChunk<T>& p, int64_t i, const RowStats& rows) {
  T* s = p.S + i * p.count;
  const int64_t target = p.labels[i] - p.first;  // outside [0, count): not in this chunk
  if (target >= 0 && target < p.count) {
    const double cosine = static_cast<double>(s[target]);
    rows.target_logit[i] = row_logit(cosine, true, p.map);
    rows.found[i] = 1.0;
    s[target] = static_cast<T>(target_margin(cosine, p.map));
  }
  const T scale = static_cast<T>(p.map.scale), bias = static_cast<T>(p.map.bias);
  T top = -std::numeric_limits<T>::infinity();
  SEE_PRAGMA(omp simd reduction(max : top))
  for (int64_t c = 0; c < p.count; ++c) top = s[c] > top ? s[c] : top;
  // scale > 0: the largest cosine has the largest logit. A NaN cosine is skipped by the maximum
  // but makes its exponential, and so the row's sum, NaN.
  const T shift = scale * top + bias;
  double sum = 0.0;
  for (int64_t block = 0; block < p.count; block += kSoftmaxExpBlock) {
    const int64_t block_end = std::min(p.count, block + kSoftmaxExpBlock);
    T block_sum = T(0);
    SEE_SIMD_SUM(block_sum)
    for (int64_t c = block; c < block_end; ++c) block_sum += entry_exponential(s[c], scale, bias, shift);
    sum += block_sum;
  }
  lse_merge(rows.max[i], rows.sum[i], static_cast<double>(shift), sum);
}

// Row i of the chunk's cosines replaced by d loss / d s, given the row's final lse and weight.
template <typename T>
void softmax_row_grad(const SoftmaxChunk<T>& p, int64_t i, const double* lse, const double* weight) {
  T* s = p.S + i * p.count;
  const int64_t target = p.labels[i] - p.first;
  const bool here = target >= 0 && target < p.count;
  const double target_cosine = here ? static_cast<double>(s[target]) : 0.0;
  const T scale = static_cast<T>(p.map.scale), bias = static_cast<T>(p.map.bias);
  const T row_lse = static_cast<T>(lse[i]), weight_scale = static_cast<T>(weight[i] * p.map.scale);
  SEE_PRAGMA(omp simd)
  for (int64_t c = 0; c < p.count; ++c) s[c] = other_class_grad(s[c], scale, bias, row_lse, weight_scale);
  if (here)
    s[target] = static_cast<T>(cosine_grad(target_cosine, row_logit(target_cosine, true, p.map), true, lse[i],
                                           weight[i], p.map));
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
