// The flash-style Proxy-Anchor loss of the one-call SEE loss (docs/method.md
// §1 over the rows of §4, its gradients as in §4): the N x C
// cosines are formed tile by tile on tensor cores (tile_product_kernels.cuh)
// and used where they are made; no N x C matrix is ever written to memory.
//
// Forward:
// class_pass_kernel: one block per tile of 32 classes sweeps all N rows.
//   Sweep 0 (large alpha only): the columns' extreme cosines (the exact
//   references of ../proxy_anchor.h). Sweep 1: the exponentials, reduced per
//   column and part in registers, then across the block's row lanes in
//   shared memory. Then the block finishes its own columns (terms, gradient
//   scales, its share of the loss): every class tile in parallel, no
//   single-block tail. The references and scales stay for the backward.
// finish_loss_kernel: the class tiles' shares added in a fixed order; the
//   flags copied out.
// Backward, with the incoming gradient g of the loss folded into the scales:
// gradient_pass_kernel: per class tile, the tile is formed again, turned
//   into dL/dS, and dL/dP̂ = G^T [x̂; ẑ] accumulates in the tile's own rows of
//   the proxies' gradient, which end as dL/dP; per tile of 32 batch rows and
//   split of the classes, dL/dx̂ = G P̂ from the tiles formed again.
//   (The synthetic rows are detached: they need no gradient.)
// finish_rows_kernel: the splits added in order, and dL/dx.
//
// The exponentials and their sums follow proxy_anchor_kernels.cuh (sums in T
// per thread, combined in double); results do not depend on timing. A flagged
// call (SelectionState::flags) gives NaN scales, so NaN gradients, and a NaN loss.
#pragma once

#include <cstdint>

#include "../fast_exp.h"
#include "../proxy_anchor.h"
#include "block_reduce.cuh"
#include "see_loss_launch.h"
#include "tile_product_kernels.cuh"

namespace see {
namespace cuda {

constexpr int kRowLanesPerTile = kProductThreads / kProductTile;  // a thread's rows of a tile: every 4th

// What a block knows of its tile of classes.
template <typename T>
struct ColumnTile {
  T refs[2][2][kProductTile];    // [neg | pos][part][column]
  T scales[2][2][kProductTile];  // [neg | pos][part][column]
};

// The shifted exponential of one entry (0 outside the loss: padding, rows past N).
template <typename T>
__device__ __forceinline__ T entry_exponential(T s, bool positive, T neg_ref, T pos_ref, T alpha) {
  return fast_exp(positive ? positive_exponent(s, pos_ref, alpha) : negative_exponent(s, neg_ref, alpha));
}

// Zeroes rows [first, first + kProductTile) (those < rows) of a D-wide matrix: the block's accumulators.
template <typename T>
__device__ void zero_rows(T* m, int64_t first, int64_t rows, int64_t D) {
  for (int64_t e = threadIdx.x; e < kProductTile * D; e += blockDim.x)
    if (first + e / D < rows) m[first * D + e] = T(0);
}

// acc[(first + q) D + d] += sum_r G[r][q] V[r][d] (or G[q][r] with transpose),
// for the tile G (shared, kProductTile x kProductLd) and the rows [v_first, +32)
// of V (v_rows x D, each divided by v_norms[row] when given); q < acc_rows.
template <typename T>
__device__ void accumulate_tile_times(const T* G, bool transpose, const T* V, const T* v_norms, int64_t v_first,
                                      int64_t v_rows, T* acc, int64_t first, int64_t acc_rows, int64_t D) {
  __shared__ T slab[kProductTile][kProductTile + 1];
  const int q = threadIdx.x % kProductTile;
  for (int64_t d0 = 0; d0 < D; d0 += kProductTile) {
    __syncthreads();  // the last slab is read
    for (int e = threadIdx.x; e < kProductTile * kProductTile; e += blockDim.x) {
      const int r = e / kProductTile, dd = e % kProductTile;
      const int64_t row = v_first + r;
      T v = T(0);
      if (row < v_rows && d0 + dd < D) v = v_norms ? V[row * D + d0 + dd] / v_norms[row] : V[row * D + d0 + dd];
      slab[r][dd] = v;
    }
    __syncthreads();
    if (first + q >= acc_rows) continue;
    for (int dd = threadIdx.x / kProductTile; dd < kProductTile && d0 + dd < D; dd += kRowLanesPerTile) {
      T sum = T(0);
      for (int r = 0; r < kProductTile; ++r)
        sum += (transpose ? G[r * kProductLd + q] : G[q * kProductLd + r]) * slab[r][dd];
      acc[(first + q) * D + d0 + dd] += sum;
    }
  }
  __syncthreads();
}

// In place, rows [first, first + 32) of grad (< rows): the gradient w.r.t. the
// raw rows from that w.r.t. the unit rows raw / norm (normalize_row_backward),
// one warp per row.
template <typename T>
__device__ void normalize_backward_rows(const T* raw, const T* norms, T* grad, int64_t first, int64_t rows,
                                        int64_t D) {
  __syncthreads();  // the accumulated rows are complete
  const int lane = threadIdx.x % kWarpSize;
  for (int q = threadIdx.x / kWarpSize; q < kProductTile; q += blockDim.x / kWarpSize) {
    const int64_t i = first + q;
    if (i >= rows) continue;  // uniform over the warp
    const T norm = norms[i];
    T dot = T(0);
    for (int64_t d = lane; d < D; d += kWarpSize) dot += raw[i * D + d] / norm * grad[i * D + d];
    dot = warp_sum(dot);
    for (int64_t d = lane; d < D; d += kWarpSize) grad[i * D + d] = (grad[i * D + d] - raw[i * D + d] / norm * dot) / norm;
  }
}

template <typename T>
__global__ void class_pass_kernel(SeeLossKernelParams<T> p) {
  __shared__ __align__(32) T tile[kProductTile * kProductLd];
  __shared__ ColumnTile<T> columns;
  __shared__ T lane_value[2][2][kRowLanesPerTile][kProductTile];  // [kind][part][row lane][column]
  const SelectionState state = *p.state;
  const int64_t N = state.rows, B = p.B, C = p.C, D = p.D;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * kProductTile;
  const int col = threadIdx.x % kProductTile, lane = threadIdx.x / kProductTile;
  const int64_t c = c0 + col;
  const T alpha = static_cast<T>(p.alpha);
  const TileOperand<T> rows{p.rows, N, nullptr}, proxies{p.proxies, C, p.proxy_norms};
  // Calls f(part, positive, s, &entry) for this thread's entries of the tile at row r0 that are in the loss.
  auto for_my_entries = [&](int64_t r0, auto&& f) {
    for (int rr = lane; rr < kProductTile; rr += kRowLanesPerTile) {
      const int64_t i = r0 + rr;
      T& entry = tile[rr * kProductLd + col];
      if (i < N && c < C) f(i < B ? 0 : 1, p.row_labels[i] == c, entry);
    }
  };
  // Combines the row lanes' values of each column (lane 0 then the others, in order).
  auto combine_lanes = [&](T (*mine)[2], bool is_max_or_min) {
    for (int kind = 0; kind < 2; ++kind)
      for (int part = 0; part < 2; ++part) lane_value[kind][part][lane][col] = mine[kind][part];
    __syncthreads();
    for (int kind = 0; kind < 2; ++kind)
      for (int part = 0; part < 2; ++part) {
        T v = lane_value[kind][part][0][col];
        for (int l = 1; l < kRowLanesPerTile; ++l) {
          const T w = lane_value[kind][part][l][col];
          v = !is_max_or_min ? v + w : kind == 0 ? (v < w ? w : v) : (w < v ? w : v);
        }
        mine[kind][part] = v;
      }
    __syncthreads();
  };

  if (lane == 0)  // cosines lie in [-1, 1]
    for (int kind = 0; kind < 2; ++kind)
      for (int part = 0; part < 2; ++part) columns.refs[kind][part][col] = kind == 0 ? T(1) : T(-1);
  if (p.exact_refs) {  // sweep 0: the largest negative and the smallest positive cosine of each column
    T ext[2][2] = {{T(-INFINITY), T(-INFINITY)}, {T(INFINITY), T(INFINITY)}};
    for (int64_t r0 = 0; r0 < N; r0 += kProductTile) {
      block_tile_product(rows, proxies, D, r0, c0, p.precision, tile);
      for_my_entries(r0, [&](int part, bool positive, T& s) {
        if (positive) ext[1][part] = s < ext[1][part] ? s : ext[1][part];
        else ext[0][part] = ext[0][part] < s ? s : ext[0][part];
      });
    }
    combine_lanes(ext, true);
    if (lane == 0)
      for (int kind = 0; kind < 2; ++kind)
        for (int part = 0; part < 2; ++part) columns.refs[kind][part][col] = ext[kind][part];
  }
  __syncthreads();
  T sums[2][2] = {{T(0), T(0)}, {T(0), T(0)}};  // [neg | pos][part]
  for (int64_t r0 = 0; r0 < N; r0 += kProductTile) {  // sweep 1: the sums of the exponentials
    block_tile_product(rows, proxies, D, r0, c0, p.precision, tile);
    for_my_entries(r0, [&](int part, bool positive, T& s) {
      sums[positive][part] += entry_exponential(s, positive, columns.refs[0][part][col], columns.refs[1][part][col], alpha);
    });
  }
  combine_lanes(sums, false);
  if (lane == 0) {  // warp 0: one thread per column finishes it (loss_proxy_row's finish on the CPU)
    double share = 0.0;
    for (int part = 0; part < 2; ++part) {
      const int64_t positives = state.positive_classes[part];
      const double weight = part == 0 ? 1.0 : p.lam;
      T neg_scale = T(0), pos_scale = T(0);
      if (positives > 0 && c < C) {
        const double nsum = sums[0][part], psum = sums[1][part];
        const double neg_ref = columns.refs[0][part][col], pos_ref = columns.refs[1][part][col];
        const double nlse = nsum == 0 ? 0.0 : negative_lse<double>(nsum, neg_ref, p.alpha, p.margin);
        const double plse = psum == 0 ? 0.0 : positive_lse<double>(psum, pos_ref, p.alpha, p.margin);
        share += weight * (column_term(psum, plse) / static_cast<double>(positives) +
                           column_term(nsum, nlse) / static_cast<double>(C));
        neg_scale = static_cast<T>(column_grad_scale(nsum, nlse, p.alpha, weight / static_cast<double>(C), 1.0));
        pos_scale = static_cast<T>(column_grad_scale(psum, plse, p.alpha, weight / static_cast<double>(positives), -1.0));
      }
      if (state.flags != 0) neg_scale = pos_scale = T(NAN);
      columns.scales[0][part][col] = neg_scale;
      columns.scales[1][part][col] = pos_scale;
      if (c < C)
        for (int kind = 0; kind < 2; ++kind) {
          p.column_refs[(kind * 2 + part) * C + c] = columns.refs[kind][part][col];
          p.column_scales[(kind * 2 + part) * C + c] = columns.scales[kind][part][col];
        }
    }
    share = warp_sum(share);
    if (col == 0) p.tile_loss[blockIdx.x] = share;
  }
}

// The gradient sweep of class tile `tile_index` (the backward): the tile is
// formed again, turned into dL/dS = e · scale · g in place (g the incoming
// gradient of the loss, folded into the columns' scales), and dL/dP̂ = G^T
// [x̂; ẑ] accumulates in the tile's own rows of the proxies' gradient, which
// end as dL/dP. `tile` is the block's shared tile.
template <typename T>
__device__ void class_gradient_block(const SeeLossKernelParams<T>& p, int64_t tile_index, T* tile) {
  const int64_t N = p.state->rows, B = p.B, C = p.C, D = p.D;
  const int64_t c0 = tile_index * kProductTile;
  const int col = threadIdx.x % kProductTile, lane = threadIdx.x / kProductTile;
  const int64_t c = c0 + col;
  const T alpha = static_cast<T>(p.alpha), g = *p.grad_loss;
  const TileOperand<T> rows{p.rows, N, nullptr}, proxies{p.proxies, C, p.proxy_norms};
  T refs[2][2] = {{T(0), T(0)}, {T(0), T(0)}}, scales[2][2] = {{T(0), T(0)}, {T(0), T(0)}};  // [neg | pos][part]
  if (c < C)
    for (int kind = 0; kind < 2; ++kind)
      for (int part = 0; part < 2; ++part) {
        refs[kind][part] = p.column_refs[(kind * 2 + part) * C + c];
        scales[kind][part] = p.column_scales[(kind * 2 + part) * C + c] * g;
      }
  zero_rows(p.grad_proxies, c0, C, D);
  for (int64_t r0 = 0; r0 < N; r0 += kProductTile) {
    block_tile_product(rows, proxies, D, r0, c0, p.precision, tile);
    for (int rr = lane; rr < kProductTile; rr += kRowLanesPerTile) {
      const int64_t i = r0 + rr;
      T& entry = tile[rr * kProductLd + col];
      if (i >= N || c >= C) {  // padding
        entry = T(0);
        continue;
      }
      const int part = i < B ? 0 : 1;
      const bool positive = p.row_labels[i] == c;
      entry = entry_exponential(entry, positive, refs[0][part], refs[1][part], alpha) * scales[positive][part];
    }
    accumulate_tile_times(tile, true, p.rows, static_cast<const T*>(nullptr), r0, N, p.grad_proxies, c0, C, D);
  }
  normalize_backward_rows(p.proxies, p.proxy_norms, p.grad_proxies, c0, C, D);
}

// Row tile `row_tile` and split `split` of the classes (the backward): dL/dx̂
// of its 32 batch rows from its classes, into its slice of grad_x_partial,
// the scales times the incoming gradient as above.
template <typename T>
__device__ void row_gradient_block(const SeeLossKernelParams<T>& p, int64_t row_tile, int64_t split, T* tile) {
  const int64_t B = p.B, C = p.C, D = p.D;
  const int64_t r0 = row_tile * kProductTile;
  const int64_t tiles = class_tiles(C), per_split = (tiles + p.row_splits - 1) / p.row_splits;
  const int64_t first_class = split * per_split * kProductTile;
  const int64_t last_class = min(C, first_class + per_split * kProductTile);
  const int col = threadIdx.x % kProductTile, lane = threadIdx.x / kProductTile;
  const T alpha = static_cast<T>(p.alpha), g = *p.grad_loss;
  const TileOperand<T> rows{p.rows, B, nullptr}, proxies{p.proxies, C, p.proxy_norms};
  T* partial = p.grad_x_partial + split * B * D;
  zero_rows(partial, r0, B, D);
  for (int64_t c0 = first_class; c0 < last_class; c0 += kProductTile) {
    block_tile_product(rows, proxies, D, r0, c0, p.precision, tile);
    const int64_t c = c0 + col;
    for (int rr = lane; rr < kProductTile; rr += kRowLanesPerTile) {
      const int64_t i = r0 + rr;
      T& entry = tile[rr * kProductLd + col];
      if (i >= B || c >= C) {
        entry = T(0);
        continue;
      }
      const bool positive = p.row_labels[i] == c;  // the real part (0) of the columns' references and scales
      const T e = entry_exponential(entry, positive, p.column_refs[c], p.column_refs[2 * C + c], alpha);
      entry = e * (p.column_scales[(positive ? 2 * C : 0) + c] * g);
    }
    accumulate_tile_times(tile, false, p.proxies, p.proxy_norms, c0, C, partial, r0, B, D);
  }
}

// The backward's one pass: blocks [0, class_tiles) are the class tiles'
// gradient sweeps, the rest the row tiles x splits of the classes (row tile
// fastest). Every block of either kind is independent of the others.
template <typename T>
__global__ void gradient_pass_kernel(SeeLossKernelParams<T> p) {
  __shared__ __align__(32) T tile[kProductTile * kProductLd];
  const int64_t class_blocks = class_tiles(p.C), block = blockIdx.x;
  if (block < class_blocks) {
    class_gradient_block(p, block, tile);
    return;
  }
  const int64_t row_tiles = (p.B + kProductTile - 1) / kProductTile, j = block - class_blocks;
  row_gradient_block(p, j % row_tiles, j / row_tiles, tile);
}

// One warp per batch row: the splits' partial dL/dx̂ added in order, then
// dL/dx by the normalisation's backward; NaN for a flagged call (also without classes).
template <typename T>
__global__ void finish_rows_kernel(SeeLossKernelParams<T> p) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kFinishRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (i >= p.B) return;  // whole warps: the shuffles below stay within one
  const int64_t B = p.B, D = p.D;
  const T* u = p.rows + i * D;
  T* grad = p.grad_x + i * D;
  const bool flagged = p.state->flags != 0;
  T dot = T(0);
  for (int64_t d = lane; d < D; d += kWarpSize) {
    T g = T(0);
    for (int64_t s = 0; s < p.row_splits; ++s) g += p.grad_x_partial[(s * B + i) * D + d];
    grad[d] = flagged ? T(NAN) : g;
    dot += u[d] * grad[d];
  }
  dot = warp_sum(dot);
  const T norm = p.row_norms[i];
  for (int64_t d = lane; d < D; d += kWarpSize) grad[d] = (grad[d] - u[d] * dot) / norm;
}

// One block: the loss, the class tiles' shares added in a fixed order (NaN
// for a flagged call), and the flags copied out.
template <typename T>
__global__ void finish_loss_kernel(SeeLossKernelParams<T> p) {
  double sum = 0.0;
  for (int64_t t = threadIdx.x; t < class_tiles(p.C); t += blockDim.x) sum += p.tile_loss[t];
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    *p.loss = p.state->flags != 0 ? T(NAN) : static_cast<T>(sum);
    *p.value_flags = p.state->flags;
  }
}

}  // namespace cuda
}  // namespace see
