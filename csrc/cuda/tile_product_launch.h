// Launch decisions of the tensor-core tile products (tile_product_kernels.cuh):
// a block of four warps forms one kProductTile x kProductTile tile of A B^T.
#pragma once

#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

constexpr int kProductTile = 32;                // rows and columns of a block's tile, and its step along K
constexpr int kProductLd = kProductTile + 8;    // shared rows padded: 32-byte aligned fragments, fewer bank conflicts
constexpr int kProductThreads = 128;            // four warps, a 16 x 16 quarter of the tile each

// How float products are formed on tensor cores (double: fp64 fragments, always).
enum class ProductPrecision : int {
  kSplitTf32 = 0,  // each operand as the sum of two tf32 numbers, three products: float's accuracy (the default)
  kTf32 = 1,       // one tf32 product: operands rounded to 11 significant bits
  kBf16 = 2,       // one bf16 product: operands rounded to 8 significant bits
};

// out (rows x cols) = A (rows x K) B^T (B: cols x K): one block per tile.
inline LaunchShape tile_product_launch(int64_t rows, int64_t cols) {
  return LaunchShape{{static_cast<uint32_t>(ceil_div(cols, kProductTile)),
                      static_cast<uint32_t>(ceil_div(rows, kProductTile)), 1},
                     {kProductThreads, 1, 1},
                     0};
}

}  // namespace cuda
}  // namespace see
