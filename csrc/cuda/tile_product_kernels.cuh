// One block's tile of A B^T on tensor cores (WMMA), the product the
// flash-style passes build on: A holds rows of length K (unit embeddings), B
// too (unit proxies), and a block of four warps forms the kProductTile^2
// tile of their cosines in shared memory, each warp a 16 x 16 quarter.
//
// The operands go through shared memory a kProductTile-wide slab of K at a
// time, zero-padded past the ends of A, B and K, so that any shape works and
// every fragment load is aligned (tile_product_launch.h pads the rows).
// float: m16n16k8 tf32 fragments, accumulated in float; with
// ProductPrecision::kSplitTf32 each operand is split as hi + lo (both tf32,
// the split exact) and the tile is lo_a hi_b + hi_a lo_b + hi_a hi_b, which
// leaves out lo_a lo_b only (a relative 2^-22): float's accuracy from three
// tensor-core products; with ProductPrecision::kBf16, m16n16k16 bf16
// fragments (operands rounded to nearest even), accumulated in float.
// double: m8n8k4 fp64 fragments, whatever the precision.
#pragma once

#include <cstdint>
#include <type_traits>

#include "tile_product_launch.h"
#include "wmma_runtime.cuh"

namespace see {
namespace cuda {

template <typename T>
struct MmaShape;
template <>
struct MmaShape<float> {
  static constexpr int M = 16, N = 16, K = 8;
  static constexpr bool kSplits = true;
  using Operand = nvcuda::wmma::precision::tf32;
};
template <>
struct MmaShape<double> {
  static constexpr int M = 8, N = 8, K = 4;
  static constexpr bool kSplits = false;  // fp64 fragments are exact operands
  using Operand = double;
};

// v = hi + lo with both in the operand precision; lo written only when split.
__device__ __forceinline__ void split_operand(float v, bool split, float* hi, float* lo) {
  *hi = nvcuda::wmma::__float_to_tf32(v);
  if (split) *lo = nvcuda::wmma::__float_to_tf32(v - *hi);
}
__device__ __forceinline__ void split_operand(double v, bool, double* hi, double*) { *hi = v; }

// One operand of a tile product: `rows` rows of length K, each divided by
// its norm when `norms` is given (raw proxies made unit as they are staged).
template <typename T>
struct TileOperand {
  const T* data;
  int64_t rows;
  const T* norms;  // rows entries, or null
};

// Entry k of the operand's row `row` (divided by its norm), 0 past the ends.
template <typename T>
__device__ __forceinline__ T operand_entry(const TileOperand<T>& a, int64_t K, int64_t row, int64_t k) {
  if (row >= a.rows || k >= K) return T(0);
  return a.norms ? a.data[row * K + k] / a.norms[row] : a.data[row * K + k];
}

// The rows [first, first + kProductTile) of the operand, entries [k0, k0 +
// kProductTile) of each, split into hi and lo (kProductTile x kProductLd), zero past the ends.
template <typename T>
__device__ void stage_slab(const TileOperand<T>& a, int64_t K, int64_t first, int64_t k0, bool split, T* hi, T* lo) {
  for (int i = threadIdx.x; i < kProductTile * kProductTile; i += blockDim.x) {
    const int r = i / kProductTile, k = i % kProductTile;
    split_operand(operand_entry(a, K, first + r, k0 + k), split, &hi[r * kProductLd + k], &lo[r * kProductLd + k]);
  }
}

// The bf16 slab of an operand (as stage_slab, rounded to bf16).
__device__ inline void stage_bf16_slab(const TileOperand<float>& a, int64_t K, int64_t first, int64_t k0,
                                       __nv_bfloat16* slab) {
  for (int i = threadIdx.x; i < kProductTile * kProductTile; i += blockDim.x) {
    const int r = i / kProductTile, k = i % kProductTile;
    slab[r * kProductLd + k] = __float2bfloat16(operand_entry(a, K, first + r, k0 + k));
  }
}

// block_tile_product with bf16 operands: one m16n16k16 fragment per warp quarter.
__device__ inline void block_tile_product_bf16(const TileOperand<float>& a, const TileOperand<float>& b, int64_t K,
                                               int64_t row0, int64_t col0, float* out) {
  namespace wmma = nvcuda::wmma;
  constexpr int kM = 16, kK = 16;
  __shared__ __align__(32) __nv_bfloat16 a16[kProductTile * kProductLd];
  __shared__ __align__(32) __nv_bfloat16 b16[kProductTile * kProductLd];
  const int warp = threadIdx.x / 32;
  const int wr = (warp / 2) * 16, wc = (warp % 2) * 16;
  wmma::fragment<wmma::accumulator, kM, kM, kK, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  for (int64_t k0 = 0; k0 < K; k0 += kProductTile) {
    __syncthreads();  // the last slab's fragments are loaded
    stage_bf16_slab(a, K, row0, k0, a16);
    stage_bf16_slab(b, K, col0, k0, b16);
    __syncthreads();
    for (int kk = 0; kk < kProductTile; kk += kK) {
      wmma::fragment<wmma::matrix_a, kM, kM, kK, __nv_bfloat16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, kM, kM, kK, __nv_bfloat16, wmma::col_major> fb;
      wmma::load_matrix_sync(fa, a16 + wr * kProductLd + kk, kProductLd);
      wmma::load_matrix_sync(fb, b16 + wc * kProductLd + kk, kProductLd);
      wmma::mma_sync(acc, fa, fb, acc);
    }
  }
  __syncthreads();  // the caller's reads of the last tile in `out` are done
  wmma::store_matrix_sync(out + wr * kProductLd + wc, acc, kProductLd, wmma::mem_row_major);
  __syncthreads();
}

// The tile [row0, row0 + kProductTile) x [col0, col0 + kProductTile) of A B^T
// into `out` (shared, kProductTile x kProductLd, row-major; zero outside A and
// B), published to the block. Called by all kProductThreads threads; `precision` uniform.
template <typename T>
__device__ void block_tile_product(const TileOperand<T>& a, const TileOperand<T>& b, int64_t K, int64_t row0,
                                   int64_t col0, ProductPrecision precision, T* out) {
  if constexpr (std::is_same<T, float>::value) {
    if (precision == ProductPrecision::kBf16) return block_tile_product_bf16(a, b, K, row0, col0, out);
  }
  bool split = precision == ProductPrecision::kSplitTf32;
  namespace wmma = nvcuda::wmma;
  using Shape = MmaShape<T>;
  using Operand = typename Shape::Operand;
  constexpr int FR = 16 / Shape::M, FC = 16 / Shape::N;  // fragments per warp quarter
  constexpr int kSlab = kProductTile * kProductLd, kLoSlab = Shape::kSplits ? kSlab : 8;
  __shared__ __align__(32) T a_hi[kSlab];
  __shared__ __align__(32) T a_lo[kLoSlab];
  __shared__ __align__(32) T b_hi[kSlab];
  __shared__ __align__(32) T b_lo[kLoSlab];
  split = split && Shape::kSplits;
  const int warp = threadIdx.x / 32;
  const int wr = (warp / 2) * 16, wc = (warp % 2) * 16;
  wmma::fragment<wmma::accumulator, Shape::M, Shape::N, Shape::K, T> acc[FR][FC];
  for (int i = 0; i < FR; ++i)
    for (int j = 0; j < FC; ++j) wmma::fill_fragment(acc[i][j], T(0));
  for (int64_t k0 = 0; k0 < K; k0 += kProductTile) {
    __syncthreads();  // the last slab's fragments are loaded
    stage_slab(a, K, row0, k0, split, a_hi, a_lo);
    stage_slab(b, K, col0, k0, split, b_hi, b_lo);
    __syncthreads();
    for (int kk = 0; kk < kProductTile; kk += Shape::K) {
      wmma::fragment<wmma::matrix_a, Shape::M, Shape::N, Shape::K, Operand, wmma::row_major> ah[FR], al[FR];
      wmma::fragment<wmma::matrix_b, Shape::M, Shape::N, Shape::K, Operand, wmma::col_major> bh[FC], bl[FC];
      for (int i = 0; i < FR; ++i) {
        wmma::load_matrix_sync(ah[i], a_hi + (wr + i * Shape::M) * kProductLd + kk, kProductLd);
        if (split) wmma::load_matrix_sync(al[i], a_lo + (wr + i * Shape::M) * kProductLd + kk, kProductLd);
      }
      for (int j = 0; j < FC; ++j) {  // B^T's column n is B's row: col-major with B's row stride
        wmma::load_matrix_sync(bh[j], b_hi + (wc + j * Shape::N) * kProductLd + kk, kProductLd);
        if (split) wmma::load_matrix_sync(bl[j], b_lo + (wc + j * Shape::N) * kProductLd + kk, kProductLd);
      }
      for (int i = 0; i < FR; ++i)
        for (int j = 0; j < FC; ++j) {
          if (split) {  // the small terms first
            wmma::mma_sync(acc[i][j], al[i], bh[j], acc[i][j]);
            wmma::mma_sync(acc[i][j], ah[i], bl[j], acc[i][j]);
          }
          wmma::mma_sync(acc[i][j], ah[i], bh[j], acc[i][j]);
        }
    }
  }
  __syncthreads();  // the caller's reads of the last tile in `out` are done
  for (int i = 0; i < FR; ++i)
    for (int j = 0; j < FC; ++j)
      wmma::store_matrix_sync(out + (wr + i * Shape::M) * kProductLd + wc + j * Shape::N, acc[i][j], kProductLd,
                              wmma::mem_row_major);
  __syncthreads();
}

// out (a_rows x b_rows, row-major) = A B^T, one tile per block (tile_product_launch).
template <typename T>
__global__ void tile_product_kernel(const T* a, int64_t a_rows, const T* b, int64_t b_rows, int64_t K,
                                    ProductPrecision precision, T* out) {
  __shared__ __align__(32) T tile[kProductTile * kProductLd];
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kProductTile;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kProductTile;
  block_tile_product(TileOperand<T>{a, a_rows, nullptr}, TileOperand<T>{b, b_rows, nullptr}, K, row0, col0,
                     precision, tile);
  for (int i = threadIdx.x; i < kProductTile * kProductTile; i += blockDim.x) {
    const int r = i / kProductTile, c = i % kProductTile;
    if (row0 + r < a_rows && col0 + c < b_rows) out[(row0 + r) * b_rows + col0 + c] = tile[r * kProductLd + c];
  }
}

}  // namespace cuda
}  // namespace see
