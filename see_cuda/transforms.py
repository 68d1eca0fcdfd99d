"""What torch.func (functorch) transforms can do with see_cuda's functions.

  - torch.func.grad / vjp / jacrev (first derivatives): the reference path
    (implementation="reference"). The fused ops' autograd is registered through
    torch.library (register_autograd) or in C++ (the one-call SEE op), which functorch's
    transforms do not pass through: under any transform each fused op raises
    (refuse_fused_op), naming the reference as the way.
  - torch.func.vmap: refused on every path (refuse_vmap): the value checks, and the
    losses' selection of the rows to expand, branch on values.
"""
from __future__ import annotations

import torch


def _transforms() -> list:
    """The active torch.func transforms, innermost last; [] outside them (the common case, checked first)."""
    if not torch._C._are_functorch_transforms_active():
        return []
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    return [interpreter.key() for interpreter in retrieve_all_functorch_interpreters()]


def refuse_vmap() -> None:
    """ValueError inside torch.func.vmap."""
    if torch._C._functorch.TransformType.Vmap in _transforms():
        raise ValueError("see_cuda's functions do not support torch.func.vmap (their value checks and the losses' "
                         "selection of the rows to expand depend on the values): call them once per batch element")


def refuse_fused_op(op_name: str) -> None:
    """RuntimeError inside any torch.func transform (grad, vjp, jacrev, vmap, ...)."""
    if _transforms():
        raise RuntimeError(f"torch.func transforms cannot differentiate the fused op see_cuda::{op_name} (its "
                           "autograd is registered through torch.library or in C++): pass "
                           "implementation=\"reference\" for torch.func, or use loss.backward() or "
                           "torch.autograd.grad with the fused kernels")
