// CPU loops of the fused Proxy-Anchor loss, one proxy at a time (docs/method.md §1).
//
// Plain C++ on raw pointers (no ATen), so that the C++ tests and sanitizers can
// run them; the ATen glue in proxy_anchor_aten.h hands chunks of proxies to
// them and proxies to threads. The cosines of a chunk of proxies are stored
// transposed, S^T (classes x N), so that everything the loss needs of proxy c,
// the cosines of all N rows with it, is one contiguous row: its sums stream
// through memory and its gradient is written while the row is still in cache.
// Rows [0, B) are the real part of the batch, rows [B, N) the synthetic part;
// each part has its own sums and weight.
//
// Labels are global class indices: the proxies may be a shard, the classes
// [first, first + C) of `total` (proxy_anchor_aten.h). A row whose label is
// not one of the proxies' classes is a negative of every one of them. Labels
// are not range-checked here: RowsByClass counts those outside [0, total), and
// the glue makes the loss and its gradients NaN when there are any.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../fast_exp.h"
#include "../proxy_anchor.h"

namespace see {
namespace cpu {

// What the proxies of one chunk share: their cosines, the rows of each class and the loss settings.
template <typename T>
struct LossProblem {
  T* ST;                            // classes x N cosines, row-major; becomes (dL/dS)^T when grads are wanted
  int64_t B, N;                     // rows [0, B) real, [B, N) synthetic
  const int64_t* positives_begin;   // per class of ST, and one more: offsets into positives
  const int64_t* positives;         // row indices grouped by class, ascending within a class
  T alpha, margin;
  double weight[2];                 // 1 and lambda
  int64_t num_positive_classes[2];  // per part, the classes among all of its labels (|P+|, not only this chunk's)
  int64_t total_classes;            // the weight of the negative terms is 1 / total_classes
  bool exact_refs;                  // alpha too large for the fixed references (proxy_anchor.h)
};

// Per-proxy loss terms, arrays with one entry per class of the chunk, per part.
struct ColumnTerms {
  double* positive[2];
  double* negative[2];
};

// Per part, the terms summed over the classes, each divided by its count
// (|P+| or total_classes) first: where alpha brings the terms near the top of
// the range their sum would overflow, their mean does not.
struct LossSums {
  double positive[2] = {0.0, 0.0};
  double negative[2] = {0.0, 0.0};
};

SEE_ISA_BEGIN

// The rows of each of the classes [first, first + C), as a counting sort of the
// global labels: offsets (C + 1) and row indices, ascending within a class.
// Rows of other classes belong to none of them; `out_of_range` counts the rows
// whose label lies outside [0, total).
struct RowsByClass {
  std::vector<int64_t> begin, rows;
  int64_t out_of_range = 0;
  RowsByClass(const int64_t* labels, int64_t N, int64_t first, int64_t C, int64_t total) : begin(C + 1, 0) {
    // label - first is computed only for labels >= first >= 0: no overflow.
    auto local = [first, C](int64_t label) { return label >= first && label - first < C; };
    for (int64_t i = 0; i < N; ++i) {
      if (labels[i] < 0 || labels[i] >= total) ++out_of_range;
      if (local(labels[i])) ++begin[labels[i] - first + 1];
    }
    for (int64_t c = 0; c < C; ++c) begin[c + 1] += begin[c];
    rows.resize(begin[C]);
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t i = 0; i < N; ++i)
      if (local(labels[i])) rows[next[labels[i] - first]++] = i;
  }
};

// How many classes of [0, total) label at least one of the rows [r0, r1): the
// |P+| of that part, whichever of them are local.
inline int64_t classes_present(const int64_t* labels, int64_t r0, int64_t r1, int64_t total) {
  std::vector<int64_t> sorted(labels + r0, labels + r1);
  std::sort(sorted.begin(), sorted.end());
  int64_t count = 0;
  for (size_t i = 0; i < sorted.size(); ++i)
    count += sorted[i] >= 0 && sorted[i] < total && (i == 0 || sorted[i] != sorted[i - 1]);
  return count;
}

// Calls f(begin, end) on the maximal ranges of [r0, r1) between the positive
// rows [first, last) (ascending, all inside [r0, r1)): the negatives, as
// contiguous runs that vectorise without a per-entry label test.
template <typename F>
inline void for_negative_runs(int64_t r0, int64_t r1, const int64_t* first, const int64_t* last, F&& f) {
  int64_t begin = r0;
  for (const int64_t* q = first; q < last; ++q) {
    f(begin, *q);
    begin = *q + 1;
  }
  f(begin, r1);
}

// Sums of a run of exponentials are taken in T over blocks of kExpBlock
// entries, vectorised without conversions in the loop, and the blocks are
// added in double: a block's sum is within gamma_kExpBlock(T) of its value
// (in any order; about the square root of that for the usual 16 lanes of a
// vector). In double throughout, the loop took half as long again.
constexpr int64_t kExpBlock = 256;

// Replaces row[i], i in [begin, end), by exp(alpha (row[i] - ref)) and returns their sum.
template <typename T>
double negative_exponentials(T* row, int64_t begin, int64_t end, T ref, T alpha) {
  double sum = 0.0;
  for (int64_t block = begin; block < end; block += kExpBlock) {
    const int64_t block_end = std::min(end, block + kExpBlock);
    T block_sum = T(0);
    SEE_SIMD_SUM(block_sum)
    for (int64_t i = block; i < block_end; ++i) {
      const T e = fast_exp(negative_exponent(row[i], ref, alpha));
      block_sum += e;
      row[i] = e;
    }
    sum += block_sum;
  }
  return sum;
}

// The loss terms of the chunk's proxy c and, with `write_grad`, dL/ds_ic in
// place of s_ic. The exponents alpha (s - ref) take the stored cosines as they
// are, so with exact references the extreme entry's exponent is exactly 0.
template <typename T>
void loss_proxy_row(const LossProblem<T>& p, int64_t c, bool write_grad, const ColumnTerms& terms) {
  T* row = p.ST + c * p.N;
  const int64_t* pos_first = p.positives + p.positives_begin[c];
  const int64_t* pos_last = p.positives + p.positives_begin[c + 1];
  for (int part = 0; part < 2; ++part) {
    const int64_t r0 = part == 0 ? 0 : p.B, r1 = part == 0 ? p.B : p.N;
    // This part's positives of class c: a sub-range of the ascending list.
    const int64_t* part_first = std::lower_bound(pos_first, pos_last, r0);
    const int64_t* part_last = std::lower_bound(part_first, pos_last, r1);
    T neg_ref = T(1), pos_ref = T(-1);  // cosines lie in [-1, 1] ...
    if (p.exact_refs) {                 // ... unless alpha is too large for that bound
      neg_ref = -std::numeric_limits<T>::infinity();
      for_negative_runs(r0, r1, part_first, part_last, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) neg_ref = std::max(neg_ref, row[i]);
      });
      pos_ref = std::numeric_limits<T>::infinity();
      for (const int64_t* q = part_first; q < part_last; ++q) pos_ref = std::min(pos_ref, row[*q]);
    }
    double neg_sum = 0.0;
    for_negative_runs(r0, r1, part_first, part_last, [&](int64_t begin, int64_t end) {
      neg_sum += negative_exponentials(row, begin, end, neg_ref, p.alpha);
    });
    double pos_sum = 0.0;
    for (const int64_t* q = part_first; q < part_last; ++q) {
      const T e = fast_exp(positive_exponent(row[*q], pos_ref, p.alpha));
      pos_sum += e;
      row[*q] = e;
    }
    const double alpha = p.alpha, margin = p.margin;
    // sum == 0: no terms (column_term); a NaN sum goes on as NaN.
    const double neg_lse = neg_sum == 0 ? 0.0 : negative_lse<double>(neg_sum, neg_ref, alpha, margin);
    const double pos_lse = pos_sum == 0 ? 0.0 : positive_lse<double>(pos_sum, pos_ref, alpha, margin);
    terms.negative[part][c] = column_term(neg_sum, neg_lse);
    terms.positive[part][c] = column_term(pos_sum, pos_lse);
    if (!write_grad) continue;
    const int64_t positives = p.num_positive_classes[part];
    const double pos_weight = positives > 0 ? p.weight[part] / static_cast<double>(positives) : 0.0;
    const double neg_weight = p.weight[part] / static_cast<double>(p.total_classes);
    const T neg_scale = static_cast<T>(column_grad_scale(neg_sum, neg_lse, alpha, neg_weight, 1.0));
    const T pos_scale = static_cast<T>(column_grad_scale(pos_sum, pos_lse, alpha, pos_weight, -1.0));
    for_negative_runs(r0, r1, part_first, part_last, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) row[i] *= neg_scale;
    });
    for (const int64_t* q = part_first; q < part_last; ++q) row[*q] *= pos_scale;
  }
}

// loss_proxy_row for the chunk's proxies [begin, end).
template <typename T>
void loss_proxy_rows(const LossProblem<T>& p, int64_t begin, int64_t end, bool write_grad, const ColumnTerms& terms) {
  for (int64_t c = begin; c < end; ++c) loss_proxy_row(p, c, write_grad, terms);
}

// Adds the terms of a chunk's `count` proxies to `sums`, in proxy order: over
// the chunks in order, the sums do not depend on the chunk size or the threads.
template <typename T>
void add_terms(const LossProblem<T>& p, const ColumnTerms& terms, int64_t count, LossSums& sums) {
  for (int part = 0; part < 2; ++part) {
    if (p.num_positive_classes[part] == 0) continue;  // a part without rows
    const double positives = static_cast<double>(p.num_positive_classes[part]);
    const double classes = static_cast<double>(p.total_classes);
    for (int64_t c = 0; c < count; ++c) {
      sums.positive[part] += terms.positive[part][c] / positives;
      sums.negative[part] += terms.negative[part][c] / classes;
    }
  }
}

// The loss (the share of the proxies whose terms `sums` holds) from the summed terms.
template <typename T>
double total_loss(const LossProblem<T>& p, const LossSums& sums) {
  double loss = 0.0;
  for (int part = 0; part < 2; ++part)
    if (p.num_positive_classes[part] > 0) loss += p.weight[part] * (sums.positive[part] + sums.negative[part]);
  return loss;
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
