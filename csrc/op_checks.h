// Every argument and value check the kernels make, for all backends: shapes,
// dtypes, contiguity and one device before any memory is touched, and the
// value checks of the paths that make them in C++. User-facing validation,
// with messages that name the argument, happens once in Python
// (validation.py); these guard the raw pointers against calls that bypass it.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "loss_params.h"
#include "proxy_anchor.h"

namespace see {

inline void check_one_device(std::initializer_list<const at::Tensor*> tensors) {
  const at::Device device = (*tensors.begin())->device();
  for (const at::Tensor* t : tensors) TORCH_CHECK(t->device() == device, "all inputs must be on one device");
}

inline void check_proxy_anchor_args(const at::Tensor& x, const at::Tensor& labels, const at::Tensor& proxies,
                                    const at::Tensor& synthetic, const at::Tensor& synthetic_labels) {
  TORCH_CHECK(x.dim() == 2 && proxies.dim() == 2 && synthetic.dim() == 2, "x, proxies, synthetic must be 2-D");
  TORCH_CHECK(proxies.size(1) == x.size(1) && synthetic.size(1) == x.size(1), "feature sizes differ");
  TORCH_CHECK(x.scalar_type() == proxies.scalar_type() && x.scalar_type() == synthetic.scalar_type(),
              "x, proxies and synthetic must share one dtype");
  TORCH_CHECK(labels.scalar_type() == at::kLong && synthetic_labels.scalar_type() == at::kLong, "labels must be int64");
  TORCH_CHECK(labels.dim() == 1 && synthetic_labels.dim() == 1 && labels.numel() == x.size(0) &&
                  synthetic_labels.numel() == synthetic.size(0),
              "one label per row");
  TORCH_CHECK(x.is_contiguous() && proxies.is_contiguous() && synthetic.is_contiguous() && labels.is_contiguous() &&
                  synthetic_labels.is_contiguous(),
              "inputs must be contiguous");
  check_one_device({&x, &labels, &proxies, &synthetic, &synthetic_labels});
}

// The memory budget of the loss's chunks of classes (proxy_anchor.h): given, at least one byte.
inline int64_t chunk_budget(const std::optional<int64_t>& chunk_bytes) {
  if (!chunk_bytes.has_value()) return kDefaultChunkBytes;
  TORCH_CHECK(*chunk_bytes >= 1, "chunk_bytes must be >= 1 (None: the default budget), got ", *chunk_bytes);
  return *chunk_bytes;
}

// The sharded interface of proxy_anchor_fused: the C local proxies are the
// global classes [class_offset, class_offset + C) of total_classes (none: C,
// with class_offset 0).
inline ClassShard class_shard(int64_t C, int64_t class_offset, const std::optional<int64_t>& total_classes) {
  if (!total_classes.has_value()) {
    TORCH_CHECK(class_offset == 0, "class_offset must be 0 when total_classes is None (the proxies are all classes), "
                "got ", class_offset);
    return {0, C, C};
  }
  const int64_t total = *total_classes;
  // class_offset <= total - C: C and total are >= 0 there, so nothing overflows.
  TORCH_CHECK(total >= 0 && class_offset >= 0 && class_offset <= total - C, "the ", C,
              " proxies must be the classes [class_offset, class_offset + ", C, ") of [0, total_classes), got "
              "class_offset ", class_offset, " and total_classes ", total);
  return {class_offset, C, total};
}

// The params of one proxy_anchor_fused call of C local proxies, checked and filled once.
inline ProxyAnchorParams proxy_anchor_params(int64_t C, double alpha, double margin, double lam, bool compute_grad,
                                             bool synthetic_grad, int64_t class_offset,
                                             const std::optional<int64_t>& total_classes,
                                             const std::optional<int64_t>& chunk_bytes) {
  return {{alpha, margin}, lam, class_shard(C, class_offset, total_classes), chunk_budget(chunk_bytes), compute_grad,
          synthetic_grad};
}

// The products' name as see_cuda takes it ("float32", "tf32" or "bf16").
inline Products products_named(const std::string& name) {
  if (name == "float32") return Products::kFloat32;
  if (name == "tf32") return Products::kTf32;
  TORCH_CHECK_VALUE(name == "bf16", "products must be 'float32', 'tf32' or 'bf16', got '", name, "'");
  return Products::kBf16;
}

// The params of one see_loss_fused call of C proxies, checked and filled once.
inline SeeLossParams see_loss_params(int64_t C, int64_t n_expansion, const std::optional<int64_t>& num_selected,
                                     double threshold, double lam, double alpha, double margin, bool compute_grad,
                                     const std::optional<int64_t>& chunk_bytes, const std::string& products) {
  TORCH_CHECK(!num_selected.has_value() || *num_selected >= 0,
              "num_selected must be >= 0 (None: select by threshold), got ", num_selected.value_or(0));
  return {proxy_anchor_params(C, alpha, margin, lam, compute_grad, false, 0, std::nullopt, chunk_bytes), n_expansion,
          num_selected, threshold, products_named(products)};
}

// The softmax-family operators (softmax_family_schema.cpp): rows x, their int64 labels, class
// vectors of any strides; for the gradient, one float64 LSE and weight per row on x's device.
inline void check_softmax_family_args(const at::Tensor& x, const at::Tensor& labels, const at::Tensor& classes) {
  TORCH_CHECK(x.dim() == 2 && classes.dim() == 2 && classes.size(1) == x.size(1), "x is N x D, classes C x D");
  TORCH_CHECK(x.scalar_type() == classes.scalar_type(), "x and classes must share one dtype");
  TORCH_CHECK(labels.scalar_type() == at::kLong && labels.dim() == 1 && labels.numel() == x.size(0),
              "one int64 label per row");
  TORCH_CHECK(x.is_contiguous() && labels.is_contiguous(), "x and labels must be contiguous");
  check_one_device({&x, &labels, &classes});
}

// The params of one softmax-family call, checked and filled once.
inline SoftmaxFamilyParams softmax_family_params(double scale, double bias, int64_t margin_kind, double margin,
                                                 int64_t class_offset, const std::optional<int64_t>& chunk_bytes) {
  TORCH_CHECK(class_offset >= 0, "class_offset must be >= 0");
  return {{scale, bias, margin_kind, margin}, class_offset, chunk_budget(chunk_bytes)};
}

inline void check_row_doubles(const at::Tensor& x, const at::Tensor& lse, const at::Tensor& weight) {
  TORCH_CHECK(lse.scalar_type() == at::kDouble && weight.scalar_type() == at::kDouble && lse.numel() == x.size(0) &&
                  weight.numel() == x.size(0) && lse.device() == x.device() && weight.device() == x.device(),
              "lse and weight: one float64 per row, on x's device");
}

inline void check_expansion_args(const at::Tensor& z, const at::Tensor& w, const at::Tensor& noise) {
  TORCH_CHECK(z.dim() == 2 && w.sizes() == z.sizes(), "z and w must be k x D");
  TORCH_CHECK(noise.dim() == 3 && noise.size(0) == z.size(0) && noise.size(2) == z.size(1),
              "noise must be k x (n-1) x D");
  TORCH_CHECK(z.scalar_type() == w.scalar_type() && z.scalar_type() == noise.scalar_type(), "one dtype expected");
  TORCH_CHECK(z.is_contiguous() && w.is_contiguous() && noise.is_contiguous(), "inputs must be contiguous");
  TORCH_CHECK(z.size(1) >= noise.size(1) + 2, "the frame needs D >= n + 1");
  check_one_device({&z, &w, &noise});
}

inline void check_expansion_grad(const at::Tensor& grad, const at::Tensor& z, const at::Tensor& noise) {
  TORCH_CHECK(grad.sizes() == at::IntArrayRef({z.size(0), noise.size(1) + 1, z.size(1)}) && grad.is_contiguous() &&
                  grad.scalar_type() == z.scalar_type() && grad.device() == z.device(),
              "grad must be a contiguous k x n x D tensor like z");
}

inline void check_slerp_args(const at::Tensor& a, const at::Tensor& b, const at::Tensor& t) {
  TORCH_CHECK(a.dim() == 2 && b.sizes() == a.sizes() && t.dim() == 1 && t.size(0) == a.size(0),
              "a, b must be R x D and t of length R");
  // As the public slerp: with D = 1 the sphere is two points and no great
  // circle joins them (the fallback tangent at the antipode, orthogonal to â,
  // does not exist), and with D = 0 there is no direction at all.
  TORCH_CHECK(a.size(1) >= 2, "slerp needs rows of D >= 2 coordinates, got D = ", a.size(1));
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.scalar_type() == t.scalar_type(), "one dtype expected");
  TORCH_CHECK(a.is_contiguous() && b.is_contiguous() && t.is_contiguous(), "inputs must be contiguous");
  check_one_device({&a, &b, &t});
}

inline void check_slerp_grad(const at::Tensor& grad, const at::Tensor& a) {
  TORCH_CHECK(grad.sizes() == a.sizes() && grad.is_contiguous() && grad.scalar_type() == a.scalar_type() &&
                  grad.device() == a.device(),
              "grad must be a contiguous R x D tensor like a");
}

// The whole SEE loss in one call (see_loss_fused); noise, when given, holds
// the draws of every batch row.
inline void check_see_loss_args(const at::Tensor& x, const at::Tensor& labels, const at::Tensor& proxies,
                                const c10::optional<at::Tensor>& noise, const at::Tensor& seed, int64_t n) {
  TORCH_CHECK(x.dim() == 2 && proxies.dim() == 2 && proxies.size(1) == x.size(1), "x and proxies must be B x D, C x D");
  TORCH_CHECK(x.scalar_type() == proxies.scalar_type(), "x and proxies must share one dtype");
  TORCH_CHECK(labels.scalar_type() == at::kLong && labels.dim() == 1 && labels.numel() == x.size(0),
              "labels must be B int64");
  TORCH_CHECK(x.is_contiguous() && proxies.is_contiguous() && labels.is_contiguous(), "inputs must be contiguous");
  // D - 1 >= n rather than D >= n + 1: n comes from the caller and n + 1 may overflow.
  TORCH_CHECK(n >= 1 && x.size(1) - 1 >= n, "the expansion needs n >= 1 and D >= n + 1");
  TORCH_CHECK(seed.scalar_type() == at::kLong && seed.numel() == 1, "seed must be one int64");
  check_one_device({&x, &labels, &proxies, &seed});
  if (noise.has_value()) {
    TORCH_CHECK(noise->dim() == 3 && noise->size(0) == x.size(0) && noise->size(1) == n - 1 &&
                    noise->size(2) == x.size(1) && noise->scalar_type() == x.scalar_type() && noise->is_contiguous(),
                "noise must be a contiguous B x (n-1) x D tensor of x's dtype");
    check_one_device({&x, &*noise});
  }
}

inline void check_philox_normal_args(const at::Tensor& out, const at::Tensor& seed) {
  TORCH_CHECK(out.is_contiguous() && (out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble),
              "out must be a contiguous float32 or float64 tensor");
  TORCH_CHECK(seed.dim() == 0 && seed.scalar_type() == at::kLong && seed.device() == out.device(),
              "seed must be a 0-d int64 tensor on out's device");
}

inline void check_mmd_centers_args(const at::Tensor& out) {
  TORCH_CHECK(out.dim() == 2 && out.scalar_type() == at::kDouble && out.is_contiguous(),
              "out must be a contiguous 2-D float64 tensor");
}

// ---------------------------------------------------------------- values
// Host arrays only: these read every value.

// Labels index per-proxy arrays: out-of-range values would write out of bounds.
// The message is the Python validation's (see_cuda/validation.py).
inline void check_labels_in_range(const int64_t* y, int64_t count, int64_t C, const char* name) {
  if (count == 0) return;
  const auto [lo, hi] = std::minmax_element(y, y + count);
  TORCH_CHECK_VALUE(*lo >= 0 && *hi < C, name, " must lie in [0, ", C, ") (the number of proxies), got values in [",
                    *lo, ", ", *hi, "]");
}

// Rows whose norm is not finite hold a NaN or an infinity, or overflow when
// squared (x / |x| would be 0): both are errors, worded as the Python
// validation's (see_cuda/validation.py), which leaves these checks to the
// kernel on the paths that make them here.
template <typename T>
void check_finite_rows(const T* rows, const T* norms, int64_t R, int64_t D, const char* name) {
  for (int64_t i = 0; i < R; ++i) {
    if (std::isfinite(norms[i])) continue;
    for (int64_t d = 0; d < D; ++d)
      TORCH_CHECK_VALUE(std::isfinite(rows[i * D + d]), name, " contains NaN or infinite values");
    char largest[32];
    std::snprintf(largest, sizeof largest, "%.3g", std::sqrt(static_cast<double>(std::numeric_limits<T>::max())));
    TORCH_CHECK_VALUE(false, name, " has a row whose squared norm overflows in ",
                      sizeof(T) == 4 ? "torch.float32" : "torch.float64", " (a norm above ", largest,
                      "), or, where the normalisation's ε of 1e-12 is 0 (float16), underflows: it cannot be "
                      "normalised; rescale it");
  }
}

}  // namespace see
