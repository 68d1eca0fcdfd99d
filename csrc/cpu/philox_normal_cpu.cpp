// CPU kernel of philox_normal_: fills a tensor with elements 0 .. numel-1 of
// a counter-based normal stream (../philox_normal.h, through hot_loops.h).
// The formulas: docs/method.md §5.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "hot_loops.h"

namespace see {
namespace cpu {
namespace {

// Elements per chunk of the parallel loop. Every element depends only on the
// seed and its index, so the result does not depend on the chunking.
constexpr int64_t kChunk = 1 << 15;

void philox_normal_cpu(at::Tensor& out, const at::Tensor& seed) {
  check_philox_normal_args(out, seed);
  const uint64_t seed_value = static_cast<uint64_t>(seed.item<int64_t>());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "philox_normal_cpu", [&] {
    scalar_t* values = out.data_ptr<scalar_t>();
    at::parallel_for(0, out.numel(), kChunk, [&](int64_t begin, int64_t end) {
      hot_loops<scalar_t>().philox_normal_fill(seed_value, static_cast<uint64_t>(begin), end - begin, values + begin);
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) { m.impl("philox_normal_", &philox_normal_cpu); }

}  // namespace cpu
}  // namespace see
