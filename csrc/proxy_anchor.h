// Per-column math of the Proxy-Anchor loss, shared by the CPU and CUDA kernels (docs/method.md §1).
//
// For proxy c the loss has two terms of the form log(1 + sum_i exp(a_i)):
//   positives  a_i = -alpha (s_ic - margin),  i with y_i == c
//   negatives  a_i =  alpha (s_ic + margin),  i with y_i != c
// Each is accumulated as a sum of exp(a_i - shift) with a per-column shift, and
// finished as softplus(shift + log(sum)), which neither overflows nor loses the
// "1 +" for large alpha. The shift is written as alpha (ref + margin) for the
// negatives and -alpha (ref - margin) for the positives, where `ref` bounds the
// cosines from above (negatives) or below (positives): then every exponent is
// alpha (s - ref) <= 0, resp. -alpha (s - ref) <= 0. With ref = +-1 (cosines lie
// in [-1, 1]) no pass over the data is needed to find a shift, as long as
// 2 alpha stays inside the exponent range of the type (`fixed_ref_is_safe`);
// otherwise the kernels find the exact column extrema first.
//
// Classes are processed in chunks (the similarities of all N rows with a chunk
// of proxies at a time): every weight of the loss is known before any column
// is seen (1/total_classes, and 1/|P+| from the labels), so each chunk's terms
// and gradients are final when it is done, and memory is bounded by the chunk.
#pragma once

#include <cmath>
#include <cstdint>

#include "see_common.h"

namespace see {

// The default memory budget of one chunk of similarities (chunk_bytes None in the ops):
// 256 MiB, about 50,000 classes for a batch of 1,332 float rows.
constexpr int64_t kDefaultChunkBytes = int64_t(256) << 20;

SEE_ISA_BEGIN

// Classes per chunk: as many N-row columns of `element_bytes` entries as fit
// in chunk_bytes (0, which the ops never pass: kDefaultChunkBytes), at least one.
inline int64_t classes_per_chunk(int64_t chunk_bytes, int64_t rows, int64_t element_bytes) {
  const int64_t budget = chunk_bytes > 0 ? chunk_bytes : kDefaultChunkBytes;
  const int64_t column_bytes = (rows > 0 ? rows : 1) * element_bytes;
  const int64_t classes = budget / column_bytes;
  return classes > 0 ? classes : 1;
}

template <typename T>
SEE_HD T softplus(T v) {
  return v > T(0) ? v + log1p(exp(-v)) : log1p(exp(v));
}

template <typename T>
SEE_HD T sigmoid(T v) {
  if (v >= T(0)) return T(1) / (T(1) + exp(-v));
  const T e = exp(v);
  return e / (T(1) + e);
}

// Whether exponents down to -2 alpha (1 + margin-free slack) stay normal in T.
template <typename T>
SEE_HD bool fixed_ref_is_safe(double alpha) {
  const double normal_range = sizeof(T) == 4 ? 80.0 : 700.0;
  return 2.0 * alpha * 1.01 < normal_range;
}

// Exponent of one negative entry relative to its column's reference.
template <typename T>
SEE_HD T negative_exponent(T s, T ref, T alpha) {
  return alpha * (s - ref);
}

// Exponent of one positive entry relative to its column's reference.
template <typename T>
SEE_HD T positive_exponent(T s, T ref, T alpha) {
  return -alpha * (s - ref);
}

// The logsumexp of a column's negative (resp. positive) logits, from its sum of
// shifted exponentials. Only meaningful when sum != 0.
template <typename T>
SEE_HD T negative_lse(T sum, T ref, T alpha, T margin) {
  return alpha * (ref + margin) + log(sum);
}
template <typename T>
SEE_HD T positive_lse(T sum, T ref, T alpha, T margin) {
  return -alpha * (ref - margin) + log(sum);
}

// log(1 + sum_i exp(a_i)) of a column; 0 for a column without terms. A column
// with terms has sum >= 1 (its extreme term's exponent is 0, or >= -2 alpha
// with the fixed references, inside the normal range), so sum == 0 means no
// terms; a NaN sum (a NaN cosine) is not 0 and stays NaN.
template <typename T>
SEE_HD T column_term(T sum, T lse) {
  return sum == T(0) ? T(0) : softplus(lse);
}

// d term / d s_ic = sign * alpha * sigmoid(lse) * exp(a_i - lse), written as
// scale * exp(exponent_i) with this per-column scale (weight = 1/C, 1/|P+|, and
// lambda for the synthetic rows; sign = -1 for positives). 0 without terms,
// NaN for a NaN sum (see column_term).
template <typename T>
SEE_HD T column_grad_scale(T sum, T lse, T alpha, T weight, T sign) {
  return sum == T(0) ? T(0) : sign * alpha * weight * sigmoid(lse) / sum;
}

SEE_ISA_END
}  // namespace see
