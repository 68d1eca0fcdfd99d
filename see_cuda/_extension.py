"""Loads the compiled kernels, if this install has them, and says which it has."""
from __future__ import annotations

import torch

try:
    from . import _C  # noqa: F401  (registers the torch.ops.see_cuda.* kernels)

    HAVE_EXTENSION = True
except ImportError:  # a source checkout without a build: the reference path serves
    HAVE_EXTENSION = False

# An op whose kernels exist for every backend the extension was built with.
_PROBE_OP = "see_cuda::proxy_anchor_fused"


def has_kernel(device_type: str) -> bool:
    """Whether the fused kernels were compiled for this device type ("cpu", "cuda")."""
    if not HAVE_EXTENSION:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(_PROBE_OP, device_type.upper())


def backends() -> dict:
    """What this install of see_cuda can run: {"cpu": bool, "cuda": bool, "cuda_device": bool}.

    "cpu"/"cuda": whether the fused kernels were compiled for that backend;
    "cuda_device": whether a CUDA device is visible now.
    """
    return {"cpu": has_kernel("cpu"), "cuda": has_kernel("cuda"), "cuda_device": torch.cuda.is_available()}
