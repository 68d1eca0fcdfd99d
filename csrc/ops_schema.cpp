// Schemas of the see_cuda operators, and the Python module that loads them.
//
// The kernels register themselves per backend (cpu/*.cpp, cuda/*.cu); Python
// reaches them as torch.ops.see_cuda.<name> after `import see_cuda._C`.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// An empty module: importing it loads this library and runs the registrations.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
}

TORCH_LIBRARY(see_cuda, m) {
  m.def("mmd_centers_(Tensor(a!) out, float radius) -> ()");
  // Elements 0 .. numel-1 of the counter-based normal stream `seed` (a 0-d int64 tensor).
  m.def("philox_normal_(Tensor(a!) out, Tensor seed) -> ()");
  m.def("expansion(Tensor z, Tensor w, Tensor noise) -> Tensor");
  m.def("expansion_backward(Tensor grad, Tensor z, Tensor w, Tensor noise) -> Tensor");
  m.def("slerp(Tensor a, Tensor b, Tensor t) -> Tensor");
  m.def("slerp_backward(Tensor grad, Tensor a, Tensor b, Tensor t) -> (Tensor, Tensor, Tensor)");
  // (loss, dL/dx, dL/dproxies, dL/dsynthetic) of the share of the proxies, the global classes
  // [class_offset, class_offset + C) of total_classes (None: C), in PA(x) + lam PA(synthetic);
  // labels are global. The similarities are formed in chunks of classes of at most
  // chunk_bytes (None: the default budget, csrc/proxy_anchor.h).
  m.def(
      "proxy_anchor_fused(Tensor x, Tensor labels, Tensor proxies, Tensor synthetic, Tensor synthetic_labels, "
      "float alpha, float margin, float lam, bool compute_grad, bool synthetic_grad, int class_offset=0, "
      "int? total_classes=None, int? chunk_bytes=None) -> (Tensor, Tensor, Tensor, Tensor)");
  // The whole SEE loss with detached synthetic points: (loss, dL/dx, dL/dproxies,
  // number expanded, mean positive cosine, value flags, saved values, saved indices);
  // num_selected None selects by threshold; products "float32", "tf32" or "bf16"
  // (loss_params.h). The CPU kernel forms the gradients in the forward (with
  // compute_grad) and raises on bad values: its flags are 0 and its saved state empty.
  // The CUDA kernels flag bad values instead (cuda/see_loss_launch.h: 0 when all
  // passed), leave the gradients empty, and with compute_grad return the state that
  // see_loss_fused_backward reads.
  m.def(
      "see_loss_fused(Tensor x, Tensor labels, Tensor proxies, Tensor? noise, Tensor seed, int n_expansion, "
      "int? num_selected, float threshold, float lam, float alpha, float margin, bool compute_grad, "
      "int? chunk_bytes=None, str products=\"float32\") -> "
      "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // (dL/dx, dL/dproxies) times grad_loss, from a CUDA forward's saved state.
  m.def(
      "see_loss_fused_backward(Tensor grad_loss, Tensor labels, Tensor proxies, Tensor saved_values, "
      "Tensor saved_indices, float alpha, str products=\"float32\") -> (Tensor, Tensor)");
}
