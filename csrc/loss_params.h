// The shared types of the loss ops (docs/method.md §1, §2, §4, §7), defined once for
// the CPU and CUDA paths and named as in Python: each op's arguments are
// checked and filled into its params struct once (op_checks.h), which is then
// passed down whole.
#pragma once

#include <cstdint>
#include <optional>

#include "softmax_family.h"

namespace see {

// Proxy-Anchor's scale α and margin δ (see_cuda.ProxyAnchorSettings).
struct ProxyAnchorSettings {
  double alpha, margin;
};

// The proxies of one call are the global classes [offset, offset + size) of
// `total` (see_cuda.sharded.ClassShard; all of them: offset 0, size = total).
struct ClassShard {
  int64_t offset, size, total;
};

// One call of proxy_anchor_fused: PA(x) + lam PA(synthetic) for the classes `shard`.
struct ProxyAnchorParams {
  ProxyAnchorSettings settings;
  double lam;           // the weight of the synthetic rows' term
  ClassShard shard;
  int64_t chunk_bytes;  // the budget of one chunk of similarities, >= 1 (proxy_anchor.h)
  bool compute_grad;    // form the gradients in the forward pass
  bool synthetic_grad;  // ... the synthetic rows' too
};

// The float32 products a caller allows (see_cuda's `products=`): kFloat32, float32's
// accuracy; kTf32 and kBf16, operands rounded to tf32 (11 significant bits) or bf16
// (8) where the device has tensor cores. The CPU kernels form float32 products
// either way; float64 is float64.
enum class Products : int { kFloat32 = 0, kTf32 = 1, kBf16 = 2 };

// One call of see_loss_fused (see_cuda.SphericalExpansion with detached synthetic points).
struct SeeLossParams {
  ProxyAnchorParams loss;               // over all the classes, without the synthetic rows' gradient
  int64_t n_expansion;                  // synthetic points per expanded row
  std::optional<int64_t> num_selected;  // the best-fitted rows expanded; none: by threshold
  double threshold;                     // the cosine a row needs when selected by threshold
  Products products;                    // the float32 products allowed
};

// One call of softmax_family_rows or softmax_family_grad: the logit map, and the
// classes [class_offset, class_offset + C) in chunks of at most chunk_bytes of cosines.
struct SoftmaxFamilyParams {
  LogitMap map;
  int64_t class_offset;
  int64_t chunk_bytes;  // >= 1 (proxy_anchor.h)
};

}  // namespace see
