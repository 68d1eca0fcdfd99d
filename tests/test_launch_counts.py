"""The backward of the one-call SEE loss is two scalings: the kernels form both gradients in the forward.

The one-call op's autograd (csrc/see_loss_autograd.cpp) is the same on every
device, so the operators it runs in the backward, recorded here on the CPU, are
the launches of its CUDA backward: two elementwise products and nothing that
reads a value back. (The forward's launches are counted without a GPU by the
launch recorder of csrc/tests/test_cuda_see_loss.cpp, at the SOP-like shape.)
"""
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import see_cuda  # noqa: F401  (loads the operators)


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def test_backward_is_two_elementwise_products():
    g = torch.Generator().manual_seed(0)
    B, C, D, n = 12, 30, 16, 4
    x = torch.randn(B, D, generator=g, requires_grad=True)
    proxies = torch.randn(C, D, generator=g, requires_grad=True)
    labels = torch.randint(0, C, (B,), generator=g)
    seed = torch.tensor(7, dtype=torch.int64)
    loss, _, _, _, _ = torch.ops.see_cuda.see_loss_fused(x, labels, proxies, None, seed, n, 5, 0.0, 0.2, 32.0, 0.1,
                                                          True, None)
    grad_loss = torch.ones(())  # made outside: the incoming gradient is the caller's
    recorder = RecordOps()
    with recorder:
        loss.backward(grad_loss)
    names = [str(op) for op in recorder.ops]
    # detach makes a view (autograd's accumulation of a leaf's first gradient): no kernel.
    launches = [name for name in names if name != "aten.detach.default"]
    assert launches == ["aten.mul.Tensor", "aten.mul.Tensor"], names
    assert x.grad is not None and proxies.grad is not None
    assert "aten._local_scalar_dense.default" not in names  # no value read back
