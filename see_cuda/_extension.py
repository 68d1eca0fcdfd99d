"""Loads the compiled kernels, if this install has them, and says which it has."""
from __future__ import annotations

import torch

try:
    from . import _C  # noqa: F401  (registers the torch.ops.see_cuda.* kernels)

    HAVE_EXTENSION = True
except ImportError:  # a source checkout without a build: the reference path serves
    HAVE_EXTENSION = False

# An op whose kernels exist for every backend the extension was built with.
PROBE_OP = "see_cuda::proxy_anchor_fused"


_KERNELS_FOUND: dict = {}  # registrations are made once, at import: ask the dispatcher once

# The dispatch key of each device type whose tensors the ops can take. "meta"
# tensors carry shapes only: their kernels are the fake kernels of ops.py, so
# that shape propagation (and torch.compile with meta inputs) takes the fused path.
_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA", "meta": "Meta"}


@torch.compiler.assume_constant_result  # a fact of this install: torch.compile reads it once, not into the graph
def has_kernel(device_type: str, op: str = PROBE_OP) -> bool:
    """Whether the fused kernels (or the one op `op`) exist for this device type ("cpu", "cuda", "meta")."""
    key = (device_type, op)
    if key not in _KERNELS_FOUND:
        dispatch_key = _DISPATCH_KEYS.get(device_type)
        _KERNELS_FOUND[key] = (HAVE_EXTENSION and dispatch_key is not None
                               and torch._C._dispatch_has_kernel_for_dispatch_key(op, dispatch_key))
    return _KERNELS_FOUND[key]


def backends() -> dict:
    """What this install of see_cuda can run: {"cpu": bool, "cuda": bool, "cuda_device": bool}.

    "cpu"/"cuda": whether the fused kernels were compiled for that backend;
    "cuda_device": whether a CUDA device is visible now.
    """
    return {"cpu": has_kernel("cpu"), "cuda": has_kernel("cuda"), "cuda_device": torch.cuda.is_available()}
