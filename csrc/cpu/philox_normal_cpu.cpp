// The philox_normal_ operator (schema and CPU kernel): fills a tensor with
// elements 0 .. numel-1 of a counter-based normal stream (philox_normal.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../philox_normal.h"

namespace see {
namespace cpu {
namespace {

// Elements per chunk of the parallel loop. Every element depends only on the
// seed and its index, so the result does not depend on the chunking.
constexpr int64_t kChunk = 1 << 15;

void philox_normal_cpu(at::Tensor& out, const at::Tensor& seed) {
  TORCH_CHECK(out.is_contiguous() && (out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble),
              "out must be a contiguous float32 or float64 tensor");
  TORCH_CHECK(seed.dim() == 0 && seed.scalar_type() == at::kLong && seed.device() == out.device(),
              "seed must be a 0-d int64 tensor on out's device");
  const uint64_t seed_value = static_cast<uint64_t>(seed.item<int64_t>());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "philox_normal_cpu", [&] {
    scalar_t* values = out.data_ptr<scalar_t>();
    at::parallel_for(0, out.numel(), kChunk, [&](int64_t begin, int64_t end) {
      philox_normal_fill(seed_value, static_cast<uint64_t>(begin), end - begin, values + begin);
    });
  });
}

}  // namespace

// Its own fragment: the other schemas live in ops_schema.cpp.
TORCH_LIBRARY_FRAGMENT(see_cuda, m) { m.def("philox_normal_(Tensor(a!) out, Tensor seed) -> ()"); }

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) { m.impl("philox_normal_", &philox_normal_cpu); }

}  // namespace cpu
}  // namespace see
