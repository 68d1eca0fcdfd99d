// GPU passes of the fused Proxy-Anchor loss over the N x C similarity matrix.
//
// The loss has two parts, the real rows [0, B) and the synthetic rows [B, N),
// each with its own labels and its own per-column sums. The column passes run
// on a grid of (32-column tiles) x (row chunks) x (part): a thread owns one
// column and every 8th row of its chunk, so each warp reads 32 consecutive
// entries of a row. Per chunk, the partial sums go to a buffer; the finishing
// kernel adds the chunks in a fixed order, so results do not depend on timing.
//
// Labels outside [0, C) are checked by the public functions (on the GPU with
// one host synchronisation, which check_values=False skips). The kernels stay
// memory-safe for any label: such a row matches no column. The exponentiation
// pass then raises a per-call flag, and the finishing kernel makes the loss
// and every gradient scale NaN: a wrong label never yields a finite answer.
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

// Per chunk and column: the largest negative and the smallest positive cosine,
// for the exact references of large alpha (see proxy_anchor.h).
template <typename T>
__global__ void column_extrema_kernel(const T* S, int64_t C, RowParts parts, T* neg_max_partial, T* pos_min_partial) {
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
      if (labels[i] == c) {
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
  T* neg_sum;         // [part][chunk][C]
  T* pos_sum;         // [part][chunk][C]
  int* pos_count;     // [part][chunk][C]
  T* pos_exp;         // [N]: exp of each row's positive entry (0 without one)
  T* neg_ref;         // [part][C], exact references only
  T* pos_ref;         // [part][C], exact references only
  int* label_error;   // zeroed before the pass; set when a label lies outside [0, C)
};

// Replaces every entry of S by its shifted exponential (0 at a row's positive
// column, whose exponential goes to pos_exp) and writes per-chunk column sums.
// With exact references (neg_max_partial != null) the block first reduces the
// chunks' extrema of its columns.
template <typename T>
__global__ void exponentiate_kernel(T* S, int64_t C, RowParts parts, T alpha, const T* neg_max_partial,
                                    const T* pos_min_partial, ColumnPartials<T> out) {
  __shared__ T neg_lane[kRowLanes][kColumnTile];
  __shared__ T pos_lane[kRowLanes][kColumnTile];
  __shared__ int count_lane[kRowLanes][kColumnTile];
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
  int pos_count = 0;
  if (c < C) {
    for (int64_t i = range.first + ty; i < range.last; i += kRowLanes) {
      const int64_t row = parts.begin[p] + i;
      T* entry = S + row * C + c;
      const int64_t y = labels[i];
      if (c == 0 && (y < 0 || y >= C)) atomicOr(out.label_error, 1);  // column 0's threads see every row
      if (y == c) {
        const T e = fast_exp(positive_exponent(*entry, pos_ref, alpha));
        pos_sum += e;
        ++pos_count;
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
  count_lane[ty][tx] = pos_count;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int lane = 1; lane < kRowLanes; ++lane) {
      neg_sum += neg_lane[lane][tx];
      pos_sum += pos_lane[lane][tx];
      pos_count += count_lane[lane][tx];
    }
    const int64_t at = (static_cast<int64_t>(p) * chunks + chunk) * C + c;
    out.neg_sum[at] = neg_sum;
    out.pos_sum[at] = pos_sum;
    out.pos_count[at] = pos_count;
  }
}

// Inputs of the finishing kernel.
template <typename T>
struct FinishArgs {
  int64_t C;
  int chunks;
  const T* neg_sum;
  const T* pos_sum;
  const int* pos_count;
  const T* neg_ref;  // null: the fixed references +1 / -1
  const T* pos_ref;
  const int* label_error;  // nonzero: a label lies outside [0, C)
  double alpha, margin, lam;
  T* neg_scale;  // [part][C], see column_grad_scale
  T* pos_scale;  // [part][C]
  T* loss;       // 0-d
};

// One block: per part, the number of classes with a positive, the per-column
// terms and gradient scales (loss_proxy_row on the CPU, in double), and the
// loss  PA(real) + lam PA(synthetic)  written on the device. After an
// out-of-range label, NaN for the loss and every scale.
template <typename T>
__global__ void finish_columns_kernel(FinishArgs<T> args) {
  const int64_t C = args.C;
  const int chunks = args.chunks;
  if (*args.label_error != 0) {  // every thread reads the same flag: the block leaves together
    for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) args.neg_scale[c] = args.pos_scale[c] = T(NAN);
    if (threadIdx.x == 0) *args.loss = T(NAN);
    return;
  }
  double loss = 0.0;
  for (int p = 0; p < 2; ++p) {
    auto at = [&](int ch, int64_t c) { return (static_cast<int64_t>(p) * chunks + ch) * C + c; };
    long long classes = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      int count = 0;
      for (int ch = 0; ch < chunks; ++ch) count += args.pos_count[at(ch, c)];
      classes += count > 0;
    }
    const long long num_positive_classes = block_sum(classes);
    const double weight = p == 0 ? 1.0 : args.lam;
    T* neg_scale = args.neg_scale + p * C;
    T* pos_scale = args.pos_scale + p * C;
    if (num_positive_classes == 0) {  // a part without rows
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) neg_scale[c] = pos_scale[c] = T(0);
      continue;
    }
    const double pos_weight = weight / static_cast<double>(num_positive_classes);
    const double neg_weight = weight / static_cast<double>(C);
    double pos_total = 0.0, neg_total = 0.0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      double nsum = 0.0, psum = 0.0;
      int count = 0;
      for (int ch = 0; ch < chunks; ++ch) {
        nsum += static_cast<double>(args.neg_sum[at(ch, c)]);
        psum += static_cast<double>(args.pos_sum[at(ch, c)]);
        count += args.pos_count[at(ch, c)];
      }
      const double neg_ref = args.neg_ref ? static_cast<double>(args.neg_ref[p * C + c]) : 1.0;
      const double pos_ref = args.pos_ref ? static_cast<double>(args.pos_ref[p * C + c]) : -1.0;
      const double nlse = nsum > 0 ? negative_lse<double>(nsum, neg_ref, args.alpha, args.margin) : 0.0;
      neg_total += column_term(nsum, nlse);
      neg_scale[c] = static_cast<T>(column_grad_scale(nsum, nlse, args.alpha, neg_weight, 1.0));
      if (count == 0) psum = 0.0;
      const double plse = psum > 0 ? positive_lse<double>(psum, pos_ref, args.alpha, args.margin) : 0.0;
      pos_total += column_term(psum, plse);
      pos_scale[c] = static_cast<T>(column_grad_scale(psum, plse, args.alpha, pos_weight, -1.0));
    }
    pos_total = block_sum(pos_total);
    neg_total = block_sum(neg_total);
    loss += weight * (pos_total / static_cast<double>(num_positive_classes) + neg_total / static_cast<double>(C));
  }
  if (threadIdx.x == 0) *args.loss = static_cast<T>(loss);
}

// Turns E (the exponentials) into dL/dS in place, one block per row:
// entry (i, c) times the column's scale, and at the positive column the
// positive's exp times its scale. Rows [0, B) are the real part.
template <typename T>
__global__ void loss_gradient_kernel(T* S, int64_t C, RowParts parts, const T* pos_exp, const T* neg_scale,
                                     const T* pos_scale) {
  const int64_t row = blockIdx.x;
  const int p = row < parts.begin[1] ? 0 : 1;
  const int64_t y = parts.labels[p][row - parts.begin[p]];
  const T* ns = neg_scale + p * C;
  T* entries = S + row * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    entries[c] = c == y ? pos_exp[row] * pos_scale[p * C + c] : entries[c] * ns[c];
  }
}

}  // namespace cuda
}  // namespace see
