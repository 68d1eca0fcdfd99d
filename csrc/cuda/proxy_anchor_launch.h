// Launch decisions of the fused Proxy-Anchor loss on the GPU
// (proxy_anchor_kernels.cuh): block shapes, the row chunks
// of the column passes given the device's multiprocessor count, grid sizes.
// (The chunks of classes come from the memory budget: classes_per_chunk in
// ../proxy_anchor.h.)
// The formulas: docs/method.md §1.
#pragma once

#include <algorithm>
#include <cstdint>

#include "launch_shape.h"

namespace see {
namespace cuda {

// Column passes: a block covers 32 columns x 8 row lanes.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;
constexpr int kFinishThreads = 512;

// Row chunks of the column passes: enough blocks to fill the device when C is
// small, at least 32 rows (4 per thread) per chunk.
inline int column_chunks(int64_t C, int64_t max_rows, int multiprocessors) {
  const int64_t tiles = ceil_div(C, kColumnTile);
  const int64_t target_blocks = 4 * static_cast<int64_t>(multiprocessors);
  const int64_t by_rows = std::max<int64_t>(1, ceil_div(max_rows, 4 * kRowLanes));
  return static_cast<int>(std::min<int64_t>({std::max<int64_t>(1, target_blocks / tiles), by_rows, 65535}));
}

// The column passes (extrema, exponentiation): column tiles x row chunks x the two parts.
inline LaunchShape column_pass_launch(int64_t C, int chunks) {
  return LaunchShape{{static_cast<uint32_t>(ceil_div(C, kColumnTile)), static_cast<uint32_t>(chunks), 2},
                     {kColumnTile, kRowLanes, 1},
                     0};
}

inline LaunchShape finish_launch() { return LaunchShape{{1, 1, 1}, {kFinishThreads, 1, 1}, 0}; }

// The classes among the labels: one block per part.
inline LaunchShape count_classes_launch() { return LaunchShape{{2, 1, 1}, {kFinishThreads, 1, 1}, 0}; }

// The loss from its running sum: one thread.
inline LaunchShape write_loss_launch() { return LaunchShape{{1, 1, 1}, {1, 1, 1}, 0}; }

// One block per row of the N x C matrix, up to 256 threads along the row.
inline LaunchShape loss_gradient_launch(int64_t N, int64_t C) {
  const int64_t threads = std::min<int64_t>(256, std::max<int64_t>(32, ceil_div(C, 32) * 32));
  return LaunchShape{{static_cast<uint32_t>(N), 1, 1}, {static_cast<uint32_t>(threads), 1, 1}, 0};
}

}  // namespace cuda
}  // namespace see
