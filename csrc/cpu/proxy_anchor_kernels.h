// CPU loops of the fused Proxy-Anchor loss, one proxy at a time.
//
// Plain C++ on raw pointers (no ATen), so that the C++ tests and sanitizers can
// run them; the ATen glue in proxy_anchor_cpu.cpp hands proxies to threads.
// The similarities are stored transposed, S^T (C x N), so that everything the
// loss needs of proxy c, the cosines of all N rows with it, is one contiguous
// row: its sums stream through memory and its gradient is written while the
// row is still in cache. Rows [0, B) are the real part of the batch, rows
// [B, N) the synthetic part; each part has its own sums and weight.
//
// Labels are not range-checked here (the callers check them once, or not at
// all): a label outside [0, C) puts its row in no class, so nothing is indexed
// by it, and the loss and every entry of dL/dS come out NaN.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "../fast_exp.h"
#include "../proxy_anchor.h"

namespace see {
namespace cpu {

// What all proxies share: the matrix, the rows of each class and the loss settings.
template <typename T>
struct LossProblem {
  T* ST;                            // C x N, row-major; becomes (dL/dS)^T when grads are wanted
  int64_t C, B, N;                  // rows [0, B) real, [B, N) synthetic
  const int64_t* positives_begin;   // C + 1 offsets into positives: the rows of each class
  const int64_t* positives;         // row indices grouped by label, ascending within a class
  T alpha, margin;
  double weight[2];                 // 1 and lambda
  int64_t num_positive_classes[2];  // per part, classes with at least one positive row
  bool exact_refs;                  // alpha too large for the fixed references (proxy_anchor.h)
  const T* row_scale = nullptr;     // C factors (1/|p_c|) that turn rows of P x̂^T into cosines, if set
  bool labels_out_of_range = false; // some label lies outside [0, C): the loss and dL/dS are NaN
};

// Per-proxy loss terms, arrays of length C per part.
struct ColumnTerms {
  double* positive[2];
  double* negative[2];
};

SEE_ISA_BEGIN

// The rows of each class, grouped by label and ascending within a class
// (a counting sort): offsets (C + 1) and row indices. A row whose label lies
// outside [0, C) belongs to no class; `out_of_range` counts such rows.
struct RowsByClass {
  std::vector<int64_t> begin, rows;
  int64_t out_of_range = 0;
  RowsByClass(const int64_t* labels, int64_t N, int64_t C) : begin(C + 1, 0) {
    auto in_range = [C](int64_t label) { return label >= 0 && label < C; };
    for (int64_t i = 0; i < N; ++i) {
      if (in_range(labels[i]))
        ++begin[labels[i] + 1];
      else
        ++out_of_range;
    }
    for (int64_t c = 0; c < C; ++c) begin[c + 1] += begin[c];
    rows.resize(begin[C]);
    std::vector<int64_t> next(begin.begin(), begin.end() - 1);
    for (int64_t i = 0; i < N; ++i)
      if (in_range(labels[i])) rows[next[labels[i]]++] = i;
  }
  // Classes with a row in [r0, r1).
  int64_t classes_in(int64_t r0, int64_t r1, int64_t C) const {
    int64_t count = 0;
    for (int64_t c = 0; c < C; ++c) {
      const auto first = std::lower_bound(rows.begin() + begin[c], rows.begin() + begin[c + 1], r0);
      count += first != rows.begin() + begin[c + 1] && *first < r1;
    }
    return count;
  }
};

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

// The loss terms of proxy c and, with `write_grad`, dL/ds_ic in place of s_ic.
template <typename T>
void loss_proxy_row(const LossProblem<T>& p, int64_t c, bool write_grad, const ColumnTerms& terms) {
  T* row = p.ST + c * p.N;
  if (p.labels_out_of_range) {  // a row of no class: the loss is undefined, and says so
    for (int part = 0; part < 2; ++part)
      terms.positive[part][c] = terms.negative[part][c] = std::numeric_limits<double>::quiet_NaN();
    if (write_grad) std::fill(row, row + p.N, std::numeric_limits<T>::quiet_NaN());
    return;
  }
  const T scale = p.row_scale != nullptr ? p.row_scale[c] : T(1);  // row[i] * scale is the cosine
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
        for (int64_t i = begin; i < end; ++i) neg_ref = std::max(neg_ref, row[i] * scale);
      });
      pos_ref = std::numeric_limits<T>::infinity();
      for (const int64_t* q = part_first; q < part_last; ++q) pos_ref = std::min(pos_ref, row[*q] * scale);
    }
    double neg_sum = 0.0;
    for_negative_runs(r0, r1, part_first, part_last, [&](int64_t begin, int64_t end) {
      double run_sum = 0.0;
      SEE_SIMD_SUM(run_sum)
      for (int64_t i = begin; i < end; ++i) {
        const T e = fast_exp(negative_exponent(row[i] * scale, neg_ref, p.alpha));
        run_sum += e;
        row[i] = e;
      }
      neg_sum += run_sum;
    });
    double pos_sum = 0.0;
    for (const int64_t* q = part_first; q < part_last; ++q) {
      const T e = fast_exp(positive_exponent(row[*q] * scale, pos_ref, p.alpha));
      pos_sum += e;
      row[*q] = e;
    }
    const double alpha = p.alpha, margin = p.margin;
    const double neg_lse = neg_sum > 0 ? negative_lse<double>(neg_sum, neg_ref, alpha, margin) : 0.0;
    const double pos_lse = pos_sum > 0 ? positive_lse<double>(pos_sum, pos_ref, alpha, margin) : 0.0;
    terms.negative[part][c] = column_term(neg_sum, neg_lse);
    terms.positive[part][c] = column_term(pos_sum, pos_lse);
    if (!write_grad) continue;
    const int64_t positives = p.num_positive_classes[part];
    const double pos_weight = positives > 0 ? p.weight[part] / static_cast<double>(positives) : 0.0;
    const double neg_weight = p.weight[part] / static_cast<double>(p.C);
    const T neg_scale = static_cast<T>(column_grad_scale(neg_sum, neg_lse, alpha, neg_weight, 1.0));
    const T pos_scale = static_cast<T>(column_grad_scale(pos_sum, pos_lse, alpha, pos_weight, -1.0));
    for_negative_runs(r0, r1, part_first, part_last, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) row[i] *= neg_scale;
    });
    for (const int64_t* q = part_first; q < part_last; ++q) row[*q] *= pos_scale;
  }
}

// loss_proxy_row for the proxies [begin, end).
template <typename T>
void loss_proxy_rows(const LossProblem<T>& p, int64_t begin, int64_t end, bool write_grad, const ColumnTerms& terms) {
  for (int64_t c = begin; c < end; ++c) loss_proxy_row(p, c, write_grad, terms);
}

// Rows [begin, end) of a matrix `stride` wide, each row c's first `columns`
// entries times scale[c]: G's rows by 1/|p_c| before the products with P.
template <typename T>
void scale_rows(T* rows, const T* scale, int64_t stride, int64_t columns, int64_t begin, int64_t end) {
  for (int64_t c = begin; c < end; ++c) {
    SEE_PRAGMA(omp simd)
    for (int64_t i = 0; i < columns; ++i) rows[c * stride + i] *= scale[c];
  }
}

// The loss from the per-proxy terms, summed in proxy order (so it does not
// depend on how the proxies were split among threads).
template <typename T>
double total_loss(const LossProblem<T>& p, const ColumnTerms& terms) {
  if (p.labels_out_of_range) return std::numeric_limits<double>::quiet_NaN();
  double loss = 0.0;
  for (int part = 0; part < 2; ++part) {
    if (p.num_positive_classes[part] == 0) continue;  // a part without rows
    double pos = 0.0, neg = 0.0;
    for (int64_t c = 0; c < p.C; ++c) {
      pos += terms.positive[part][c];
      neg += terms.negative[part][c];
    }
    loss += p.weight[part] * (pos / p.num_positive_classes[part] + neg / p.C);
  }
  return loss;
}

SEE_ISA_END
}  // namespace cpu
}  // namespace see
