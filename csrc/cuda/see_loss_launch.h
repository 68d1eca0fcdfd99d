// Launch decisions of the one-call SEE loss on the GPU (see_loss_kernels.cuh,
// flash_loss_kernels.cuh, see_loss_pipeline.cuh): the kernels' parameters of
// one call, built once from the op's SeeLossParams (../loss_params.h, filled by
// ../op_checks.h) and passed to every kernel, the workspace they need and each
// kernel's shape. Nothing here reads the device: the sizes come from the
// shapes, so that a call never waits for the GPU.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../loss_params.h"
#include "../proxy_anchor.h"
#include "../see_common.h"
#include "expansion_launch.h"
#include "launch_shape.h"
#include "tile_product_launch.h"

namespace see {
namespace cuda {

// Why a call's results are NaN (bits of SelectionState::flags): the checks
// the kernels make on the way.
constexpr int64_t kLabelOutOfRange = 1;     // a label outside [0, C)
constexpr int64_t kNonFiniteEmbedding = 2;  // an embedding row whose norm is not finite
constexpr int64_t kNonFiniteProxy = 4;      // a proxy whose norm is not finite

// What the selection leaves on the device for the later kernels (one int64 tensor).
struct SelectionState {
  int64_t expanded;                 // k
  int64_t rows;                     // N = B + k n, the rows of the loss
  int64_t positive_classes[2];      // |P+| of the real and the synthetic part
  int64_t flags;                    // the flag bits of the rows and the proxies
};
constexpr int64_t kSelectionStateWords = sizeof(SelectionState) / sizeof(int64_t);

// Everything one call's kernels read and write: the settings of the op's
// SeeLossParams in plain fields, and pointers to device memory.
template <typename T>
struct SeeLossKernelParams {
  // Inputs.
  const T* x;               // B x D embeddings
  const int64_t* labels;    // B
  const T* proxies;         // C x D
  const T* noise;           // B x (n - 1) x D, or null: draws from the stream `seed`
  const int64_t* seed;      // one value, read on the device
  int64_t B, C, D, n;
  int64_t num_selected;     // >= 0: the fraction mode's count; -1: the threshold mode (SeeLossParams's none)
  double threshold;
  double alpha, margin, lam;
  bool exact_refs;          // alpha too large for the fixed references (../proxy_anchor.h)
  ProductPrecision precision;  // float's tile products (double: fp64 fragments whatever it says)
  int64_t row_splits;       // the backward's: its splits of the classes per row tile (row_pass_splits)
  const T* grad_loss;       // 0-d, the backward's: the incoming gradient of the loss
  // Workspace; * marks what the backward reads (SavedState).
  T* rows;                  // * max_rows x D: unit embeddings, then the synthetic points
  int64_t* row_labels;      // * max_rows
  T* row_norms;             // * B
  T* axes;                  // B x D: each row's unit class proxy
  T* positive_cosine;       // B
  int64_t* row_flags;       // B
  int64_t* proxy_flags;     // proxy_blocks(C)
  int64_t* expanded_rows;   // B: the expanded rows, in selection order
  SelectionState* state;    // *
  T* draws;                 // most_expanded x (n - 1) x D, unless noise is given
  T* expansion_scratch;     // ExpansionLaunch::global_elems, when the scratch is global
  T* proxy_norms;           // * C
  T* grad_x_partial;        // the backward's: row_splits x B x D, dL/dx̂ of each split of the classes
  T* column_refs;           // * [neg | pos][part][C]: the exponents' references
  T* column_scales;         // * [neg | pos][part][C]: the gradient scales (for an incoming gradient of 1)
  double* tile_loss;        // per class tile: its share of the loss
  // Outputs.
  T* loss;                  // 0-d
  T* grad_x;                // the backward's: B x D
  T* grad_proxies;          // the backward's: C x D
  int64_t* num_expanded;    // 0-d
  T* mean_cosine;           // 0-d
  int64_t* value_flags;     // 0-d: SelectionState::flags, for the deferred check (see_cuda/deferred_checks.py)
};

constexpr int kRowThreads = 128;     // per-row kernels: one block per row
constexpr int kSelectThreads = 256;  // the selection: one block

// Rows expanded at most: k in the fraction mode, all B in the threshold mode.
// (These three sizes are read by the kernels too.)
SEE_HD int64_t most_expanded(int64_t B, int64_t num_selected) {
  return num_selected >= 0 && num_selected < B ? num_selected : B;
}

// Room for the loss's rows: the batch and the most synthetic points.
inline int64_t max_rows(int64_t B, int64_t n, int64_t num_selected) { return B + most_expanded(B, num_selected) * n; }

SEE_HD int64_t class_tiles(int64_t C) { return (C + kProductTile - 1) / kProductTile; }

constexpr int kProxiesPerBlock = kRowThreads / 32;  // one warp per proxy norm

SEE_HD int64_t proxy_blocks(int64_t C) { return (C + kProxiesPerBlock - 1) / kProxiesPerBlock; }

// One block per batch row, then the blocks of the proxies' norms.
inline LaunchShape prepare_rows_launch(int64_t B, int64_t C) {
  return LaunchShape{{static_cast<uint32_t>(B + proxy_blocks(C)), 1, 1}, {kRowThreads, 1, 1}, 0};
}

inline LaunchShape select_launch() { return LaunchShape{{1, 1, 1}, {kSelectThreads, 1, 1}, 0}; }

// The expansion of the selected rows: its scratch kept within the default
// 48 KB of shared memory (no opt-in, which would need a host-side attribute
// call per kernel), the rest in global memory.
inline ExpansionLaunch expand_selected_launch(int64_t n, int64_t D, int64_t sources, int64_t element_bytes) {
  return plan_expansion_launch(ExpansionSizes{n, D, false}, sources, element_bytes, kDefaultSharedLimit);
}

// How the tile products are formed for the products a caller allows.
inline ProductPrecision product_precision(Products products) {
  return products == Products::kFloat32 ? ProductPrecision::kSplitTf32
         : products == Products::kTf32  ? ProductPrecision::kTf32
                                        : ProductPrecision::kBf16;
}

// What the forward keeps for the backward, in two buffers: the values (T:
// rows, row norms, proxy norms, the columns' references and scales) and the
// indices (int64: the rows' labels, then the SelectionState), so that the
// op returns them as two tensors and the backward binds them again.
struct SavedState {
  int64_t values, indices;  // element counts
};

inline SavedState saved_state_size(int64_t max_rows, int64_t B, int64_t C, int64_t D) {
  return {max_rows * D + B + 9 * C, max_rows + kSelectionStateWords};
}

// Points p's saved arrays into the two buffers (SavedState's layout).
template <typename T>
void bind_saved_state(SeeLossKernelParams<T>& p, int64_t max_rows, T* values, int64_t* indices) {
  p.rows = values;
  p.row_norms = p.rows + max_rows * p.D;
  p.proxy_norms = p.row_norms + p.B;
  p.column_refs = p.proxy_norms + p.C;
  p.column_scales = p.column_refs + 4 * p.C;
  p.row_labels = indices;
  p.state = reinterpret_cast<SelectionState*>(indices + max_rows);
}

// The forward's class pass: one block per tile of 32 classes over all rows.
inline LaunchShape class_pass_launch(int64_t C) {
  return LaunchShape{{static_cast<uint32_t>(class_tiles(C)), 1, 1}, {kProductThreads, 1, 1}, 0};
}

// The backward's row blocks: only ceil(B / 32) tiles of rows, so their
// classes are split among blocks too, enough to give every multiprocessor
// two blocks, each split at least one tile of classes.
inline int64_t row_pass_splits(int64_t B, int64_t C, int multiprocessors) {
  const int64_t row_tiles = std::max<int64_t>(1, ceil_div(B, kProductTile));
  const int64_t splits = ceil_div(2 * static_cast<int64_t>(multiprocessors), row_tiles);
  return std::max<int64_t>(1, std::min({splits, class_tiles(C), int64_t(65535)}));
}

// The backward's one pass: a block per class tile, then a block per row tile and split.
inline LaunchShape gradient_pass_launch(int64_t B, int64_t C, int64_t splits) {
  return LaunchShape{{static_cast<uint32_t>(class_tiles(C) + ceil_div(B, kProductTile) * splits), 1, 1},
                     {kProductThreads, 1, 1},
                     0};
}

// The splits' partial gradients added and the normalisation's backward: one warp per batch row.
constexpr int kFinishRowsPerBlock = 8;
inline LaunchShape finish_rows_launch(int64_t B) {
  return LaunchShape{{static_cast<uint32_t>(ceil_div(B, kFinishRowsPerBlock)), 1, 1},
                     {kFinishRowsPerBlock * 32, 1, 1},
                     0};
}

inline LaunchShape finish_loss_launch() { return LaunchShape{{1, 1, 1}, {kSelectThreads, 1, 1}, 0}; }

// The inputs and settings of one call; the workspace and outputs are bound
// after (allocate_see_loss_workspace in see_loss_pipeline.cuh, then the
// outputs). The backward's params are the forward's, its saved state bound
// again, grad_loss, grad_x_partial and the gradients added.
template <typename T>
SeeLossKernelParams<T> see_loss_kernel_params(const SeeLossParams& s, const T* x, const int64_t* labels,
                                              const T* proxies, const T* noise, const int64_t* seed, int64_t B,
                                              int64_t D) {
  SeeLossKernelParams<T> p{};
  p.x = x, p.labels = labels, p.proxies = proxies, p.noise = noise, p.seed = seed;
  p.B = B, p.C = s.loss.shard.size, p.D = D, p.n = s.n_expansion;
  p.num_selected = s.num_selected.value_or(-1), p.threshold = s.threshold;
  p.alpha = s.loss.settings.alpha, p.margin = s.loss.settings.margin, p.lam = s.loss.lam;
  p.exact_refs = !fixed_ref_is_safe<T>(p.alpha);
  p.precision = product_precision(s.products);
  return p;
}

// The backward's params: the settings it reads, the rest bound by the caller
// (bind_saved_state, grad_loss, grad_x_partial, the gradients).
template <typename T>
SeeLossKernelParams<T> see_loss_backward_kernel_params(double alpha, Products products, const T* proxies, int64_t B,
                                                       int64_t C, int64_t D, int multiprocessors) {
  SeeLossKernelParams<T> p{};
  p.proxies = proxies;
  p.B = B, p.C = C, p.D = D, p.alpha = alpha;
  p.precision = product_precision(products);
  p.row_splits = row_pass_splits(B, C, multiprocessors);
  return p;
}

}  // namespace cuda
}  // namespace see
