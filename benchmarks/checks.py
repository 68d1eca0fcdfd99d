"""Before anything is timed: does each implementation compute the loss it claims to?"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from see_cuda import reference

from implementations import ALPHA, MARGIN, see_loss_functions
from problems import Batch, Shape

# float32 results must agree with the reference to this relative error.
REL_TOL = 1e-4
HALF_TYPES = (torch.float16, torch.bfloat16)
# The per-sample implementations form the Proxy-Anchor exps directly, as the published code.
DIRECT_EXPS = ("original", "published")


@dataclass
class Check:
    against: str
    loss: float
    expected: float
    abs_error: float
    tolerance: float
    status: str  # "ok", "reference", "MISMATCH", "ERROR: what it raised", or "skipped: why"

    @property
    def failed(self) -> bool:
        return self.status == "MISMATCH" or self.status.startswith("ERROR")

    @property
    def timeable(self) -> bool:
        return not (self.status.startswith("skipped") or self.status.startswith("ERROR"))

    def as_dict(self) -> dict:
        return asdict(self)


def float32_batch(batch: Batch) -> Batch:
    proxies = torch.nn.Parameter(batch.proxies.detach().float())
    return Batch(batch.embeddings.detach().float(), batch.labels, proxies)


def check_losses(shape: Shape, batch: Batch, device: str) -> dict:
    """name -> Check of every loss function against the reference.

    SEE losses are compared with the reference SEE loss, pml with the reference
    Proxy-Anchor loss. In float32 the tolerance is REL_TOL relative; in half
    precision it is 2·|reference in that dtype − reference in float32| plus one
    unit of rounding, measured from the float32 result of the same inputs.
    An implementation other than the reference that raises is recorded as an
    ERROR (and not timed), so that the others still run.
    """
    losses, raised = {}, {}
    with torch.no_grad():
        for name, f in see_loss_functions(shape, batch, device).items():
            try:
                losses[name] = f().item()
            except Exception as error:  # recorded, and fails the run at its end
                if name == "reference":
                    raise
                raised[name] = f"ERROR: {type(error).__name__}: {error}"
        expected = {"SEE": losses["reference"], "Proxy-Anchor": _proxy_anchor(batch)}
        low_precision = batch.embeddings.dtype in HALF_TYPES
        if low_precision:
            wide = float32_batch(batch)
            wide_see = see_loss_functions(shape, wide, device)["reference"]().item()
            expected_wide = {"SEE": wide_see, "Proxy-Anchor": _proxy_anchor(wide)}
    checks = {}
    for name, loss in losses.items():
        kind = "Proxy-Anchor" if name == "pml" else "SEE"
        if not low_precision:
            target, tolerance = expected[kind], REL_TOL * abs(expected[kind])
        else:
            target = expected_wide[kind]
            rounding = torch.finfo(batch.embeddings.dtype).eps * abs(target)
            tolerance = 2 * abs(expected[kind] - target) + rounding
        checks[name] = _judge(name, loss, target, tolerance, f"reference {kind} loss", low_precision)
    for name, status in raised.items():
        against = "reference Proxy-Anchor loss" if name == "pml" else "reference SEE loss"
        checks[name] = Check(against, math.nan, math.nan, math.nan, math.nan, status)
    return checks


def _proxy_anchor(batch: Batch) -> float:
    return reference.proxy_anchor_loss(batch.embeddings, batch.labels, batch.proxies, ALPHA, MARGIN).item()


def _judge(name, loss, target, tolerance, against, low_precision) -> Check:
    error = abs(loss - target)
    if name == "reference" and not low_precision:
        status = "reference"
    elif name in DIRECT_EXPS and low_precision and not math.isfinite(loss):
        status = f"skipped: the {name} forms exp() directly and overflows in half precision"
    else:
        status = "ok" if error <= tolerance else "MISMATCH"
    return Check(against, loss, target, error, tolerance, status)
