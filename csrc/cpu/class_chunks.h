// The loop over chunks of classes shared by the CPU losses (docs/method.md §1, §7; proxy_anchor_aten.h,
// softmax_family_cpu.cpp): per chunk of at most chunk_bytes of cosines
// (proxy_anchor.h's budget), the chunk's class vectors made unit (a chunk of
// class vectors with other strides, such as PML's D x C W read as C x D, is
// made contiguous: never the whole) and their cosines with all the unit rows
// in one matrix product, in one of two layouts. Buffers are allocated once,
// for the widest chunk.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>

#include "../proxy_anchor.h"
#include "row_normalize_aten.h"

namespace see {
namespace cpu {

// How a chunk's cosines are laid out: classes x rows (each class's row contiguous: the
// column sums of Proxy-Anchor) or rows x classes (each row's chunk contiguous: softmax rows).
enum class CosineLayout { kClassesByRows, kRowsByClasses };

// One chunk of classes: the classes [first, first + count) of the class vectors.
struct ClassChunk {
  int64_t first, count;
  at::Tensor raw;      // count x D class vectors as given, contiguous
  at::Tensor unit;     // count x D unit class vectors
  at::Tensor norms;    // count norms
  at::Tensor cosines;  // count x N or N x count (CosineLayout), contiguous
};

// Classes per chunk for N rows of T (at least one, at most C).
template <typename T>
int64_t chunk_width(int64_t C, int64_t N, int64_t chunk_bytes) {
  return std::min(C, classes_per_chunk(chunk_bytes, N, sizeof(T)));
}

// Calls f(ClassChunk&) for the chunks of `width` classes in order.
template <typename T, typename F>
void for_each_class_chunk(const at::Tensor& rows_unit, const at::Tensor& classes, int64_t width, CosineLayout layout,
                          F&& f) {
  const int64_t N = rows_unit.size(0), C = classes.size(0), D = classes.size(1);
  at::Tensor cosines = at::empty({width * N}, rows_unit.options());
  at::Tensor unit_buffer = at::empty({width, D}, rows_unit.options());
  at::Tensor norm_buffer = at::empty({width}, rows_unit.options());
  for (int64_t first = 0; first < C; first += width) {
    const int64_t count = std::min(width, C - first);
    ClassChunk chunk{first, count, classes.narrow(0, first, count).contiguous(), unit_buffer.narrow(0, 0, count),
                     norm_buffer.narrow(0, 0, count), at::Tensor()};
    normalize_rows_into<T>(chunk.raw, chunk.unit, chunk.norms);
    if (layout == CosineLayout::kClassesByRows) {
      chunk.cosines = cosines.narrow(0, 0, count * N).view({count, N});
      at::mm_out(chunk.cosines, chunk.unit, rows_unit.t());
    } else {
      chunk.cosines = cosines.narrow(0, 0, N * count).view({N, count});
      at::mm_out(chunk.cosines, rows_unit, chunk.unit.t());
    }
    f(chunk);
  }
}

}  // namespace cpu
}  // namespace see
