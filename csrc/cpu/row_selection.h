// Which rows of a batch the fused SEE loss expands (docs/method.md §2).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <vector>

namespace see {
namespace cpu {

// The rows to expand given their positive cosines s, as
// see_cuda.selection.select_for_expansion: with num_selected (>= 0) the
// num_selected largest, largest first and equal cosines in batch order;
// without it every row with s >= threshold, in batch order (compared in T, as
// PyTorch compares a tensor with a Python float).
template <typename T>
std::vector<int64_t> select_rows(const T* s, int64_t B, const std::optional<int64_t>& num_selected,
                                 double threshold) {
  std::vector<int64_t> rows;
  if (num_selected.has_value()) {
    rows.resize(B);
    std::iota(rows.begin(), rows.end(), int64_t(0));
    std::stable_sort(rows.begin(), rows.end(), [s](int64_t a, int64_t b) { return s[a] > s[b]; });
    rows.resize(std::min(*num_selected, B));
  } else {
    const T bound = static_cast<T>(threshold);
    for (int64_t i = 0; i < B; ++i)
      if (s[i] >= bound) rows.push_back(i);
  }
  return rows;
}

}  // namespace cpu
}  // namespace see
