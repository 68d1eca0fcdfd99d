// GPU passes of the fused Proxy-Anchor loss over one chunk of classes: the
// N x C similarity matrix of all rows with the chunk's C proxies.
//
// The loss has two parts, the real rows [0, B) and the synthetic rows [B, N),
// each with its own labels and its own per-column sums. The column passes run
// on a grid of (32-column tiles) x (row chunks) x (part): a thread owns one
// column and every 8th row of its chunk, so each warp reads 32 consecutive
// entries of a row. Per row chunk, the partial sums go to a buffer; the
// finishing kernel adds them in a fixed order, and adds the chunk's share of
// the loss to a running sum, chunk after chunk in stream order: results do not
// depend on timing.
//
// Labels are global: the chunk's column c is the class first_class + c, and a
// row of any other class is a negative of it. |P+| of each part and the label
// check come first, from the sorted labels (count_classes_kernel). Labels
// outside [0, total_classes) are checked by the public functions (on the GPU
// with one host synchronisation, which check_values=False skips). The kernels
// stay memory-safe for any label: such a row matches no column, raises a
// per-call flag, and the finishing kernels make the loss and every gradient
// scale NaN: a wrong label never yields a finite answer.
// The formulas: docs/method.md §1.
#pragma once

#include <cstdint>

#include "../fast_exp.h"
#include "../proxy_anchor.h"
#include "block_reduce.cuh"
#include "proxy_anchor_launch.h"

namespace see {
namespace cuda {

// The rows and labels of the two parts of the loss.
struct RowParts {
  int64_t begin[2];
  int64_t rows[2];
  const int64_t* labels[2];
};

// Rows [first, last) of this block's chunk of its part, relative to the part.
struct ChunkRows {
  int64_t first, last;
  __device__ ChunkRows(int64_t rows, int chunk, int chunks) {
    const int64_t per_chunk = (rows + chunks - 1) / chunks;
    first = min(rows, chunk * per_chunk);
    last = min(rows, first + per_chunk);
  }
};

// One block per part, on the part's labels sorted: how many classes of
// [0, total_classes) they hold (|P+|), and the flag when one lies outside.
// label_error is zeroed before.
__global__ void count_classes_kernel(RowParts sorted, int64_t total_classes, long long* num_positive_classes,
                                     int* label_error) {
  const int p = blockIdx.x;
  const int64_t* y = sorted.labels[p];
  long long classes = 0;
  int outside = 0;
  for (int64_t i = threadIdx.x; i < sorted.rows[p]; i += blockDim.x) {
    const bool in_range = y[i] >= 0 && y[i] < total_classes;
    classes += in_range && (i == 0 || y[i] != y[i - 1]);
    outside += !in_range;
  }
  classes = block_sum(classes);
  outside = block_sum(outside);
  if (threadIdx.x == 0) {
    num_positive_classes[p] = classes;
    if (outside > 0) atomicOr(label_error, 1);
  }
}

// Per row chunk and column: the largest negative and the smallest positive
// cosine, for the exact references of large alpha (see proxy_anchor.h).
template <typename T>
__global__ void column_extrema_kernel(const T* S, int64_t C, int64_t first_class, RowParts parts, T* neg_max_partial,
                                      T* pos_min_partial) {
  __shared__ T neg_max_lane[kRowLanes][kColumnTile];
  __shared__ T pos_min_lane[kRowLanes][kColumnTile];
  const int tx = threadIdx.x, ty = threadIdx.y, p = blockIdx.z, chunk = blockIdx.y, chunks = gridDim.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColumnTile + tx;
  const ChunkRows range(parts.rows[p], chunk, chunks);
  const int64_t* labels = parts.labels[p];
  T neg_max = -INFINITY, pos_min = INFINITY;
  if (c < C) {
    for (int64_t i = range.first + ty; i < range.last; i += kRowLanes) {
      const T s = S[(parts.begin[p] + i) * C + c];
      if (labels[i] == first_class + c) {
        pos_min = s < pos_min ? s : pos_min;
      } else {
        neg_max = neg_max < s ? s : neg_max;
      }
    }
  }
  neg_max_lane[ty][tx] = neg_max;
  pos_min_lane[ty][tx] = pos_min;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int lane = 1; lane < kRowLanes; ++lane) {
      neg_max = neg_max < neg_max_lane[lane][tx] ? neg_max_lane[lane][tx] : neg_max;
      pos_min = pos_min_lane[lane][tx] < pos_min ? pos_min_lane[lane][tx] : pos_min;
    }
    const int64_t at = (static_cast<int64_t>(p) * chunks + chunk) * C + c;
    neg_max_partial[at] = neg_max;
    pos_min_partial[at] = pos_min;
  }
}

// Outputs of the exponentiation pass.
template <typename T>
struct ColumnPartials {
  T* neg_sum;  // [part][row chunk][C]
  T* pos_sum;  // [part][row chunk][C]
  T* pos_exp;  // [N]: exp of each row's positive entry, for the rows whose class is in the chunk
  T* neg_ref;  // [part][C], exact references only
  T* pos_ref;  // [part][C], exact references only
};

// Replaces every entry of S by its shifted exponential (0 at a row's positive
// column, whose exponential goes to pos_exp) and writes per-row-chunk column
// sums. With exact references (neg_max_partial != null) the block first
// reduces the row chunks' extrema of its columns. The exponents take the
// stored cosines as they are: the extreme entry's is exactly 0.
template <typename T>
__global__ void exponentiate_kernel(T* S, int64_t C, int64_t first_class, RowParts parts, T alpha,
                                    const T* neg_max_partial, const T* pos_min_partial, ColumnPartials<T> out) {
  __shared__ T neg_lane[kRowLanes][kColumnTile];
  __shared__ T pos_lane[kRowLanes][kColumnTile];
  __shared__ T ref_shared[2][kColumnTile];
  const int tx = threadIdx.x, ty = threadIdx.y, p = blockIdx.z, chunk = blockIdx.y, chunks = gridDim.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColumnTile + tx;
  const bool exact = neg_max_partial != nullptr;
  T neg_ref = T(1), pos_ref = T(-1);  // cosines lie in [-1, 1]
  if (exact) {
    if (ty == 0) {
      T neg_max = -INFINITY, pos_min = INFINITY;
      if (c < C) {
        for (int ch = 0; ch < chunks; ++ch) {
          const int64_t at = (static_cast<int64_t>(p) * chunks + ch) * C + c;
          neg_max = neg_max < neg_max_partial[at] ? neg_max_partial[at] : neg_max;
          pos_min = pos_min_partial[at] < pos_min ? pos_min_partial[at] : pos_min;
        }
        if (chunk == 0) {
          out.neg_ref[p * C + c] = neg_max;
          out.pos_ref[p * C + c] = pos_min;
        }
      }
      ref_shared[0][tx] = neg_max;
      ref_shared[1][tx] = pos_min;
    }
    __syncthreads();
    neg_ref = ref_shared[0][tx];
    pos_ref = ref_shared[1][tx];
  }
  const ChunkRows range(parts.rows[p], chunk, chunks);
  const int64_t* labels = parts.labels[p];
  T neg_sum = T(0), pos_sum = T(0);
  if (c < C) {
    for (int64_t i = range.first + ty; i < range.last; i += kRowLanes) {
      const int64_t row = parts.begin[p] + i;
      T* entry = S + row * C + c;
      if (labels[i] == first_class + c) {
        const T e = fast_exp(positive_exponent(*entry, pos_ref, alpha));
        pos_sum += e;
        out.pos_exp[row] = e;
        *entry = T(0);
      } else {
        const T e = fast_exp(negative_exponent(*entry, neg_ref, alpha));
        neg_sum += e;
        *entry = e;
      }
    }
  }
  neg_lane[ty][tx] = neg_sum;
  pos_lane[ty][tx] = pos_sum;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int lane = 1; lane < kRowLanes; ++lane) {
      neg_sum += neg_lane[lane][tx];
      pos_sum += pos_lane[lane][tx];
    }
    const int64_t at = (static_cast<int64_t>(p) * chunks + chunk) * C + c;
    out.neg_sum[at] = neg_sum;
    out.pos_sum[at] = pos_sum;
  }
}

// Inputs of the finishing kernel of one chunk of classes.
template <typename T>
struct FinishArgs {
  int64_t C;  // classes of the chunk
  int chunks;  // row chunks of the column passes
  const T* neg_sum;
  const T* pos_sum;
  const T* neg_ref;  // null: the fixed references +1 / -1
  const T* pos_ref;
  const int* label_error;                 // nonzero: a label lies outside [0, total_classes)
  const long long* num_positive_classes;  // [part], counted from all the part's labels
  int64_t total_classes;
  double alpha, margin, lam;
  T* neg_scale;       // [part][C], see column_grad_scale
  T* pos_scale;       // [part][C]
  double* loss_sum;   // the chunk's share of the loss is added here
};

// One block: per part, the chunk's per-column terms and gradient scales
// (loss_proxy_row on the CPU, in double), and its share of the loss
// PA(real) + lam PA(synthetic) added to the running sum. After an
// out-of-range label, NaN for every scale (the loss: write_loss_kernel).
template <typename T>
__global__ void finish_columns_kernel(FinishArgs<T> args) {
  const int64_t C = args.C;
  const int chunks = args.chunks;
  if (*args.label_error != 0) {  // every thread reads the same flag: the block leaves together
    for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) args.neg_scale[c] = args.pos_scale[c] = T(NAN);
    return;
  }
  double loss = 0.0;
  for (int p = 0; p < 2; ++p) {
    auto at = [&](int ch, int64_t c) { return (static_cast<int64_t>(p) * chunks + ch) * C + c; };
    const long long num_positive_classes = args.num_positive_classes[p];
    const double weight = p == 0 ? 1.0 : args.lam;
    T* neg_scale = args.neg_scale + p * C;
    T* pos_scale = args.pos_scale + p * C;
    if (num_positive_classes == 0) {  // a part without rows
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) neg_scale[c] = pos_scale[c] = T(0);
      continue;
    }
    const double pos_weight = weight / static_cast<double>(num_positive_classes);
    const double neg_weight = weight / static_cast<double>(args.total_classes);
    double pos_total = 0.0, neg_total = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      double nsum = 0.0, psum = 0.0;
      for (int ch = 0; ch < chunks; ++ch) {
        nsum += static_cast<double>(args.neg_sum[at(ch, c)]);
        psum += static_cast<double>(args.pos_sum[at(ch, c)]);
      }
      const double neg_ref = args.neg_ref ? static_cast<double>(args.neg_ref[p * C + c]) : 1.0;
      const double pos_ref = args.pos_ref ? static_cast<double>(args.pos_ref[p * C + c]) : -1.0;
      // sum == 0: no terms (column_term); a NaN sum goes on as NaN.
      // Each term divided by its count before the sum, as on the CPU (LossSums).
      const double nlse = nsum == 0 ? 0.0 : negative_lse<double>(nsum, neg_ref, args.alpha, args.margin);
      neg_total += column_term(nsum, nlse) / static_cast<double>(args.total_classes);
      neg_scale[c] = static_cast<T>(column_grad_scale(nsum, nlse, args.alpha, neg_weight, 1.0));
      const double plse = psum == 0 ? 0.0 : positive_lse<double>(psum, pos_ref, args.alpha, args.margin);
      pos_total += column_term(psum, plse) / static_cast<double>(num_positive_classes);
      pos_scale[c] = static_cast<T>(column_grad_scale(psum, plse, args.alpha, pos_weight, -1.0));
    }
    pos_total = block_sum(pos_total);
    neg_total = block_sum(neg_total);
    loss += weight * (pos_total + neg_total);
  }
  if (threadIdx.x == 0) *args.loss_sum += loss;
}

// One thread, after the last chunk: the loss, or NaN after an out-of-range label.
template <typename T>
__global__ void write_loss_kernel(const double* loss_sum, const int* label_error, T* loss) {
  *loss = *label_error != 0 ? T(NAN) : static_cast<T>(*loss_sum);
}

// Turns E (the exponentials) into dL/dS in place, one block per row:
// entry (i, c) times the column's scale, and at the row's positive column (if
// its class is in the chunk) the positive's exp times its scale. Rows [0, B)
// are the real part.
template <typename T>
__global__ void loss_gradient_kernel(T* S, int64_t C, int64_t first_class, RowParts parts, const T* pos_exp,
                                     const T* neg_scale, const T* pos_scale) {
  const int64_t row = blockIdx.x;
  const int p = row < parts.begin[1] ? 0 : 1;
  const int64_t y = parts.labels[p][row - parts.begin[p]];
  // y - first_class only for y >= first_class >= 0: no overflow for any label.
  const int64_t positive = y >= first_class && y - first_class < C ? y - first_class : -1;
  const T* ns = neg_scale + p * C;
  T* entries = S + row * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    entries[c] = c == positive ? pos_exp[row] * pos_scale[p * C + c] : entries[c] * ns[c];
  }
}

}  // namespace cuda
}  // namespace see
