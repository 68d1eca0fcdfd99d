// Schemas of the softmax-family operators (docs/method.md §7), a fragment of the see_cuda library.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(see_cuda, m) {
  // Per row of x (raw rows with global labels), over the classes [class_offset, class_offset + C) whose
  // vectors are `classes` (C x D, any strides), in chunks of at most chunk_bytes of cosines (None: the
  // default budget, csrc/proxy_anchor.h): N x 4 float64 (max, sum of exp(z - max), target logit,
  // 1 if the target is among these classes else 0). (max, sum) pairs of disjoint classes merge.
  m.def(
      "softmax_family_rows(Tensor x, Tensor labels, Tensor classes, float scale, float bias, int margin_kind, "
      "float margin, int class_offset=0, int? chunk_bytes=None) -> Tensor");
  // (dL/dx, dL/dclasses) of L = sum_i weight_i (LSE_i - z_iy) over these classes, given each row's final
  // LSE (float64, N) and weight (float64, N); the cosines are formed again, chunk by chunk.
  m.def(
      "softmax_family_grad(Tensor x, Tensor labels, Tensor classes, Tensor lse, Tensor weight, float scale, "
      "float bias, int margin_kind, float margin, int class_offset=0, int? chunk_bytes=None) -> (Tensor, Tensor)");
}
