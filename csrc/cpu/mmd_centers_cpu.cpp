// CPU kernel of the Max-Mahalanobis centers: every entry from its closed form (docs/method.md §3.3).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../mmd_centers.h"
#include "../op_checks.h"

namespace see {
namespace cpu {
namespace {

void mmd_centers_cpu(at::Tensor& out, double radius) {
  check_mmd_centers_args(out);
  const int64_t L = out.size(0), dim = out.size(1);
  double* centers = out.data_ptr<double>();
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < dim; ++j) centers[i * dim + j] = radius * mmd_center_entry(i, j, L);
}

}  // namespace

TORCH_LIBRARY_IMPL(see_cuda, CPU, m) { m.impl("mmd_centers_", &mmd_centers_cpu); }

}  // namespace cpu
}  // namespace see
