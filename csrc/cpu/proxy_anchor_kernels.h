// CPU loops of the fused Proxy-Anchor loss over the N x C similarity matrix.
//
// Plain C++ on raw pointers (no ATen), so that the C++ tests and sanitizers can
// run them; the ATen glue in proxy_anchor_cpu.cpp splits the columns among
// threads. Each row has exactly one positive column (its label), so every loop
// runs over the two column ranges either side of it, which keeps the inner
// loops branch-free and vectorisable.
#pragma once

#include <algorithm>
#include <limits>

#include "../fast_exp.h"
#include "../proxy_anchor.h"

namespace see {
namespace cpu {

// Column range [c0, c1) of one row split around the positive column y.
struct NegativeRanges {
  int64_t lo_end, hi_begin;
  NegativeRanges(int64_t y, int64_t c0, int64_t c1)
      : lo_end(std::min(std::max(y, c0), c1)), hi_begin(std::max(std::min(y + 1, c1), c0)) {}
};

// Exact column extrema of rows [r0, r1): the largest negative cosine and the
// smallest positive cosine of each column in [c0, c1). Used as references when
// alpha is too large for the fixed ones (see proxy_anchor.h).
template <typename T>
void column_extrema(const T* S, int64_t C, const int64_t* labels, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                    T* neg_max, T* pos_min) {
  for (int64_t c = c0; c < c1; ++c) {
    neg_max[c] = -std::numeric_limits<T>::infinity();
    pos_min[c] = std::numeric_limits<T>::infinity();
  }
  for (int64_t i = r0; i < r1; ++i) {
    const T* row = S + i * C;
    const int64_t y = labels[i - r0];
    const NegativeRanges neg(y, c0, c1);
    for (int64_t c = c0; c < neg.lo_end; ++c) neg_max[c] = std::max(neg_max[c], row[c]);
    for (int64_t c = neg.hi_begin; c < c1; ++c) neg_max[c] = std::max(neg_max[c], row[c]);
    if (y >= c0 && y < c1) pos_min[y] = std::min(pos_min[y], row[y]);
  }
}

// Replaces the entries of rows [r0, r1), columns [c0, c1) of S by their shifted
// exponentials and adds them to the column sums. Negative entries become
// exp(alpha (s - neg_ref[c])); a positive entry becomes 0 in S and its
// exp(-alpha (s - pos_ref[y])) goes to pos_exp[i - r0], so that S then holds
// the negatives' part of dL/dS up to a per-column scale.
template <typename T>
void exponentiate_rows(T* S, int64_t C, const int64_t* labels, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                       T alpha, const T* neg_ref, const T* pos_ref, double* neg_sum, double* pos_sum, T* pos_exp) {
  for (int64_t i = r0; i < r1; ++i) {
    T* row = S + i * C;
    const int64_t y = labels[i - r0];
    const NegativeRanges neg(y, c0, c1);
    for (int64_t c = c0; c < neg.lo_end; ++c) {
      const T e = fast_exp(negative_exponent(row[c], neg_ref[c], alpha));
      neg_sum[c] += e;
      row[c] = e;
    }
    for (int64_t c = neg.hi_begin; c < c1; ++c) {
      const T e = fast_exp(negative_exponent(row[c], neg_ref[c], alpha));
      neg_sum[c] += e;
      row[c] = e;
    }
    if (y >= c0 && y < c1) {
      const T e = fast_exp(positive_exponent(row[y], pos_ref[y], alpha));
      pos_sum[y] += e;
      pos_exp[i - r0] = e;
      row[y] = T(0);
    }
  }
}

// Per-column results of one part (the real or the synthetic rows) of the loss.
template <typename T>
struct ColumnPart {
  const double* neg_sum;
  const double* pos_sum;
  const T* neg_ref;
  const T* pos_ref;
  const char* has_positive;  // per column: nonzero when some row is a positive
  int64_t num_positive_classes;
  double weight;  // 1 for the real rows, lambda for the synthetic ones
};

// The part's loss, and its per-column gradient scales (see column_grad_scale).
template <typename T>
double finish_columns(const ColumnPart<T>& part, int64_t C, double alpha, double margin, T* neg_scale, T* pos_scale) {
  if (part.num_positive_classes == 0) {  // a part without rows
    std::fill(neg_scale, neg_scale + C, T(0));
    std::fill(pos_scale, pos_scale + C, T(0));
    return 0.0;
  }
  const double pos_weight = part.weight / static_cast<double>(part.num_positive_classes);
  const double neg_weight = part.weight / static_cast<double>(C);
  double pos_total = 0.0, neg_total = 0.0;
  for (int64_t c = 0; c < C; ++c) {
    const double nsum = part.neg_sum[c];
    const double nlse = nsum > 0 ? negative_lse<double>(nsum, part.neg_ref[c], alpha, margin) : 0.0;
    neg_total += column_term(nsum, nlse);
    neg_scale[c] = static_cast<T>(column_grad_scale(nsum, nlse, alpha, neg_weight, 1.0));
    const double psum = part.has_positive[c] ? part.pos_sum[c] : 0.0;
    const double plse = psum > 0 ? positive_lse<double>(psum, part.pos_ref[c], alpha, margin) : 0.0;
    pos_total += column_term(psum, plse);
    pos_scale[c] = static_cast<T>(column_grad_scale(psum, plse, alpha, pos_weight, -1.0));
  }
  return part.weight * (pos_total / part.num_positive_classes + neg_total / C);
}

}  // namespace cpu
}  // namespace see
