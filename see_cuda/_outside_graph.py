"""Functions that torch.compile runs outside its graph (torch.compiler.disable), each made on first use.

torch.compiler.disable imports torch._dynamo, about a second that `import see_cuda` must not cost.
A module registers its function here once, with the reason torch.compile(fullgraph=True) reports,
and calls it as an attribute of this module (`_outside_graph.read_values(...)`): this module's
__getattr__ wraps the function on the first lookup. torch.compile resolves a module's attribute
in plain Python, so the wrapping happens outside the trace, and the traced call then meets the
disabled function and its reason.
"""
from __future__ import annotations

from typing import Callable

import torch

_REGISTERED: dict[str, tuple[Callable, str]] = {}


def register(name: str, fn: Callable, reason: str) -> None:
    """Makes `fn`, run outside torch.compile's graph for `reason`, this module's attribute `name`."""
    if name in _REGISTERED or name in globals():
        raise ValueError(f"{name!r} is already registered to run outside the graph")
    _REGISTERED[name] = (fn, reason)


def __getattr__(name: str):
    if name not in _REGISTERED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    fn, reason = _REGISTERED[name]
    wrapped = torch.compiler.disable(fn, reason=reason)
    globals()[name] = wrapped  # later lookups find it without __getattr__
    return wrapped
