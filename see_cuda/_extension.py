"""Loads the compiled kernels, if this install has them, says which it has, and why not.

An install without `_C` (SEE_CUDA_BUILD=none, or a source checkout not built) runs the
reference path by design. A `_C` that exists but does not load (most often: compiled
against another torch than the one running) is a broken install: it warns once, at
import, with the loader's error and the fix, and `implementation="fused"` repeats why.
"""
from __future__ import annotations

import importlib.util
import warnings

import torch

FIX = ("reinstall see_cuda against the torch you run: install torch first, then "
       "`pip install --no-build-isolation --force-reinstall --no-deps see_cuda` (or, in a source checkout, "
       "`pip install --no-build-isolation -e .`)")


class ExtensionLoadWarning(RuntimeWarning):
    """see_cuda._C exists but does not load: the fused kernels are off."""


def _built_against() -> str | None:
    """The torch that _C was compiled against, as setup.py recorded it (None when unknown)."""
    try:
        from ._build_info import TORCH_VERSION
    except ImportError:
        return None
    return TORCH_VERSION


def load_failure_message(error: BaseException) -> str:
    """Why the kernels are off, for the warning at import and for implementation="fused"."""
    built = _built_against()
    mismatch = (f" It was compiled against torch {built}; this is torch {torch.__version__}."
                if built is not None and built != torch.__version__ else "")
    return (f"see_cuda._C exists but does not load, so the fused kernels are off and the reference path (far "
            f"slower) runs instead. The loader said: {type(error).__name__}: {error}.{mismatch} Fix: {FIX}.")


def _load() -> tuple[bool, str | None]:
    """(whether _C loaded, why it did not when it exists)."""
    if importlib.util.find_spec(f"{__package__}._C") is None:
        return False, None  # no kernels in this install, by design: the reference path serves
    try:
        from . import _C  # noqa: F401  (registers the torch.ops.see_cuda.* kernels)
    except Exception as error:  # an undefined symbol, a damaged file, a failed registration: all say the same
        return False, load_failure_message(error)
    return True, None


HAVE_EXTENSION, LOAD_ERROR = _load()
if LOAD_ERROR is not None:
    warnings.warn(LOAD_ERROR, ExtensionLoadWarning, stacklevel=1)

# An op whose kernels exist for every backend the extension was built with.
PROBE_OP = "see_cuda::proxy_anchor_fused"


_KERNELS_FOUND: dict = {}  # registrations are made once, at import: ask the dispatcher once

# The dispatch key of each device type whose tensors the ops can take. "meta"
# tensors carry shapes only: their kernels are the fake kernels of ops.py, so
# that shape propagation (and torch.compile with meta inputs) takes the fused path.
_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA", "meta": "Meta"}


def has_kernel(device_type: str, op: str = PROBE_OP) -> bool:
    """Whether the fused kernels (or the one op `op`) exist for this device type ("cpu", "cuda", "meta")."""
    key = (device_type, op)
    if key not in _KERNELS_FOUND:
        dispatch_key = _DISPATCH_KEYS.get(device_type)
        _KERNELS_FOUND[key] = (HAVE_EXTENSION and dispatch_key is not None
                               and torch._C._dispatch_has_kernel_for_dispatch_key(op, dispatch_key))
    return _KERNELS_FOUND[key]


# A fact of this install: torch.compile reads it once, not into the graph. This is the mark that
# torch.compiler.assume_constant_result sets, set without importing torch._dynamo (about a second
# at `import see_cuda`); tests/test_package.py checks that the two agree.
has_kernel._dynamo_marked_constant = True


def missing_kernels_message(device_type: str, op: str = PROBE_OP) -> str:
    """Why implementation="fused" cannot run `op` on `device_type`: the load error, no kernels, or no backend."""
    if LOAD_ERROR is not None:
        return LOAD_ERROR
    if not HAVE_EXTENSION:
        return ("this install of see_cuda has no compiled kernels (installed with SEE_CUDA_BUILD=none, or a source "
                "checkout that was not built: `pip install --no-build-isolation -e .`); implementation='auto' or "
                "'reference' runs the reference path")
    if device_type == "cuda" and not has_kernel("cuda"):
        return ("see_cuda was built without CUDA kernels (torch was a CPU build or nvcc was not found when it was "
                "built; SEE_CUDA_BUILD=cuda insists); see see_cuda.backends()")
    return f"see_cuda has no fused kernel of {op} for {device_type} tensors; see see_cuda.backends()"


def backends() -> dict:
    """What this install of see_cuda can run: {"cpu": bool, "cuda": bool, "cuda_device": bool}.

    "cpu"/"cuda": whether the fused kernels were compiled for that backend and load;
    "cuda_device": whether a CUDA device is visible now. When a compiled `_C` fails to load,
    `see_cuda._extension.LOAD_ERROR` says why (it is also warned at import).
    """
    return {"cpu": has_kernel("cpu"), "cuda": has_kernel("cuda"), "cuda_device": torch.cuda.is_available()}
