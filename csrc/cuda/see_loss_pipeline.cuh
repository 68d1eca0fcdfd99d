// The launches of one call of the one-call SEE loss on the GPU (docs/method.md
// §2 the selection, §3 the expansion, §5 the draws, §1 and §4 the loss), in order, on
// one stream, and nothing else: no value is read back and no host-side
// decision depends on the data, so a call never waits for the GPU and can be
// captured in a CUDA graph. `launch(shape, kernel, args...)` is the caller's:
// <<<>>> with a launch check in see_loss_cuda.cu, the host emulation in the
// C++ tests, a recorder that counts the launches in the launch-count test.
//
// Forward: at most 6 launches: unit rows, cosines and proxy norms; the
// selection; the draws (unless noise is given); the expansion; the class
// pass; the loss. With the seed's draw (see_cuda.noise.draw_seed), 7 per call.
// Backward: 2: the gradient pass (the class tiles' and the row tiles'
// sweeps, the incoming gradient folded into the scales) and the rows' finish.
#pragma once

#include <cstdint>

#include "flash_loss_kernels.cuh"
#include "philox_normal_kernels.cuh"
#include "philox_normal_launch.h"
#include "see_loss_kernels.cuh"
#include "see_loss_launch.h"

namespace see {
namespace cuda {

// Element counts of the workspace of one call (see SeeLossKernelParams).
struct SeeLossSizes {
  int64_t max_rows, draws, expansion_scratch, class_tiles;
  ExpansionLaunch expansion;
  SavedState saved;
};

template <typename T>
SeeLossSizes see_loss_sizes(const SeeLossKernelParams<T>& p) {
  const int64_t k_max = most_expanded(p.B, p.num_selected);
  SeeLossSizes s{};
  s.max_rows = max_rows(p.B, p.n, p.num_selected);
  s.draws = p.noise != nullptr ? 0 : k_max * (p.n - 1) * p.D;
  s.expansion = expand_selected_launch(p.n, p.D, k_max, sizeof(T));
  s.expansion_scratch = k_max > 0 ? s.expansion.global_elems : 0;
  s.class_tiles = class_tiles(p.C);
  s.saved = saved_state_size(s.max_rows, p.B, p.C, p.D);
  return s;
}

// Points the forward's own workspace of p at buffers from `allocate(E{},
// count)`, one per array of `count` elements of type E: tensors in the CUDA
// glue, host arrays in the tests. (The saved state is bound by
// bind_saved_state.) The buffers are written before they are read: none
// needs zeroing.
template <typename T, typename Allocate>
void allocate_see_loss_workspace(SeeLossKernelParams<T>& p, const SeeLossSizes& s, Allocate&& allocate) {
  const int64_t B = p.B, C = p.C, D = p.D;
  p.axes = allocate(T{}, B * D);
  p.positive_cosine = allocate(T{}, B);
  p.row_flags = allocate(int64_t{}, B);
  p.proxy_flags = allocate(int64_t{}, proxy_blocks(C));
  p.expanded_rows = allocate(int64_t{}, B);
  p.draws = allocate(T{}, s.draws);
  p.expansion_scratch = allocate(T{}, s.expansion_scratch);
  p.tile_loss = allocate(double{}, s.class_tiles);
}

// The forward: the loss, and the state its backward reads.
template <typename T, typename Launch>
void enqueue_see_loss(const SeeLossKernelParams<T>& p, const SeeLossSizes& sizes, Launch&& launch) {
  const int64_t k_max = most_expanded(p.B, p.num_selected);
  if (p.B + proxy_blocks(p.C) > 0) launch(prepare_rows_launch(p.B, p.C), prepare_rows_kernel<T>, p);
  launch(select_launch(), select_kernel<T>, p);
  if (k_max > 0) {
    if (sizes.draws > 0) launch(philox_normal_launch(sizes.draws), philox_normal_kernel<T>, p.draws, p.seed, sizes.draws);
    const ExpansionLaunch& plan = sizes.expansion;
    launch(plan.shape, expand_selected_kernel<T>, p, plan.sizes, plan.placement(p.expansion_scratch));
  }
  if (p.C > 0) launch(class_pass_launch(p.C), class_pass_kernel<T>, p);
  launch(finish_loss_launch(), finish_loss_kernel<T>, p);
}

// The backward (p: the forward's saved state, grad_loss, grad_x_partial of
// row_splits x B x D and the gradients bound): dL/dx and dL/dproxies times
// the incoming gradient.
template <typename T, typename Launch>
void enqueue_see_loss_backward(const SeeLossKernelParams<T>& p, Launch&& launch) {
  const int64_t blocks = class_tiles(p.C) + ceil_div(p.B, int64_t(kProductTile)) * p.row_splits;
  if (blocks > 0) launch(gradient_pass_launch(p.B, p.C, p.row_splits), gradient_pass_kernel<T>, p);
  if (p.B > 0) launch(finish_rows_launch(p.B), finish_rows_kernel<T>, p);
}

}  // namespace cuda
}  // namespace see
