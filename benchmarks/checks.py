"""Before anything is timed: does each implementation compute the loss it claims to?"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import torch

from see_cuda import reference

from comparisons import chunking_bounds
from implementations import ALL, ALPHA, FLOOR, LAM, MARGIN, fused_see_loss_function, see_loss_functions
from problems import MANY_CLASSES_CHECK, Batch, Shape, make_batch

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
    note: str = ""  # what else was compared, and how closely

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


def check_losses(shape: Shape, batch: Batch, device: str, chunk_bytes=None) -> dict:
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
        for name, f in see_loss_functions(shape, batch, device, chunk_bytes).items():
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


# Why the many-classes shapes time the fused loss alone.
MATRIX_LOSSES_LEFT_OUT = ("skipped: forms the N x C similarity matrix, several times over (5.3 GB each in float32 at "
                          "C = 10^6), which this shape is too large for")


def check_chunking(shape: Shape, dtype: torch.dtype, device: str, seed: int, chunk_bytes=None) -> dict:
    """name -> Check for a shape with too many classes for the N x C matrix (shape.many_classes).

    The fused loss there works in chunks of classes; it is checked at MANY_CLASSES_CHECK classes, where
    one chunk of all of them fits: its loss and its gradients w.r.t. the embeddings and the proxies in
    chunks (chunk_bytes, default the library's) against one chunk, within the bound of a different
    chunking (tests/comparisons.py, chunking_bounds). The other implementations are skipped.
    """
    checks = {name: Check("-", math.nan, math.nan, math.nan, math.nan, MATRIX_LOSSES_LEFT_OUT)
              for name in ALL if name not in ("fused", FLOOR)}
    small = dataclasses.replace(shape, classes=MANY_CLASSES_CHECK)
    batch = make_batch(small, dtype, device, seed)
    one_chunk = small.num_rows * small.classes * 8  # bytes of a float64 N x C matrix: more than one chunk needs
    results = []
    for budget in (chunk_bytes, one_chunk):
        batch.clear_grads()
        loss = fused_see_loss_function(small, batch, device, budget)()
        loss.backward()
        results.append((loss.item(), batch.embeddings.grad.double().cpu(), batch.proxies.grad.double().cpu()))
    (chunked, gx, gp), (whole, gx_whole, gp_whole) = results
    kernel_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    loss_bound, rows_bound, proxies_bound = chunking_bounds(ALPHA, LAM, kernel_dtype, small.dim, small.classes,
                                                            small.num_rows, whole)
    # Half-precision results are the kernel's rounded once more: one unit of the dtype on either side.
    rounding = torch.finfo(dtype).eps if dtype in HALF_TYPES else 0.0
    loss_bound += rounding * abs(whole)

    def worst(got, want, rows, bound):  # the largest |difference| over its bound, bound / |row| per row
        norms = torch.sqrt((rows.detach().double().cpu() ** 2).sum(-1, keepdim=True) + reference.NORM_EPS)
        return ((got - want).abs() / (bound / norms + rounding * want.abs())).max().item()

    gradients = max(worst(gx, gx_whole, batch.embeddings, rows_bound), worst(gp, gp_whole, batch.proxies,
                                                                            proxies_bound))
    error = abs(chunked - whole)
    status = "ok" if error <= loss_bound and gradients <= 1 else "MISMATCH"
    checks["fused"] = Check(f"the fused loss in one chunk at C={small.classes:,}", chunked, whole, error, loss_bound,
                            status, f"gradients within {gradients:.2g} of their bound")
    return checks
