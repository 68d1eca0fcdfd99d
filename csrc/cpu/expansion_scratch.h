// The scratch of one thread that expands one source at a time: it owns the
// buffers that ExpansionBuffers (expansion_kernels.h) hands to the loops.
// The formulas: docs/method.md §3.
#pragma once

#include <cstdint>
#include <vector>

#include "expansion_kernels.h"

namespace see {
namespace cpu {

// For n points in D dimensions; `backward` adds what source_backward needs.
template <typename T>
class ExpansionScratch {
 public:
  ExpansionScratch(int64_t n, int64_t D, bool backward)
      : frame_((n + 1) * D), z_unit_(D), draws_((n - 1) * D), gs_coef_((n + 1) * (n + 1)), pass_coef_(n + 1),
        prefix_(D), gram_((n + 1) * (n + 1)), h_(backward ? n * D : 0), work_(backward ? 2 * D : 0),
        qr_work_(backward ? (n - 1) * (n - 1) + 4 * (n - 1) : 0),
        buffers_{frame_.data(),  z_unit_.data(), draws_.data(), gs_coef_.data(), pass_coef_.data(),
                 prefix_.data(), gram_.data(),   h_.data(),     work_.data(),    qr_work_.data()} {}
  ExpansionScratch(const ExpansionScratch&) = delete;
  ExpansionScratch& operator=(const ExpansionScratch&) = delete;

  const ExpansionBuffers<T>& buffers() const { return buffers_; }

 private:
  std::vector<T> frame_, z_unit_, draws_, gs_coef_, pass_coef_, prefix_;
  std::vector<double> gram_;
  std::vector<T> h_, work_, qr_work_;
  ExpansionBuffers<T> buffers_;
};

}  // namespace cpu
}  // namespace see
