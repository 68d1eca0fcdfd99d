"""Which implementation runs a call, decided here and nowhere else.

`implementation="auto"` runs the compiled kernels where this install has them
for the tensors' device and the reference otherwise; "fused" insists on the
kernels (a clear error without them); "reference" runs see_cuda.reference.
For the SEE loss the decision is a `Plan` (see `plan`): the path (the
reference's primitives in the composition, the compiled operators in the
composition, or the whole loss in one op), the primitives, and which value
checks the kernel makes itself. Whether a kernel exists is asked of
PyTorch's dispatcher, per op and device type: where one exists, it runs.

A base loss enters through BASE_LOSSES, keyed by the class of its settings:
its reference and fused scoring primitives, its reference share, and the op
that computes the whole SEE loss with it in one call, if any.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch

from . import composition, fused, reference, softmax_fused, softmax_reference, validation
from ._extension import PROBE_OP, has_kernel, missing_kernels_message
from .composition import BaseLoss, SEEPrimitives
from .loss_settings import SOFTMAX_FAMILY
from .options import ProxyAnchorSettings
from .share import reference_share

WHOLE_LOSS_OP = "see_cuda::see_loss_fused"
NOISE_OP = "see_cuda::philox_normal_"
MMD_CENTERS_OP = "see_cuda::mmd_centers_"
SOFTMAX_FAMILY_OP = "see_cuda::softmax_family_rows"

REFERENCE, COMPOSED, ONE_CALL = "reference", "composed", "one-call"

BASE_LOSSES: dict[type, BaseLoss] = {
    ProxyAnchorSettings: BaseLoss(
        reference=reference.proxy_anchor_primitive, fused=fused.proxy_anchor, reference_share=reference_share,
        one_call_op=WHOLE_LOSS_OP, one_call=fused.see_loss_in_one_call,
        # The CPU kernel raises on a label out of range, a non-finite row or one that overflows; the CUDA
        # kernels cannot without a host synchronisation: they flag the call and make its loss NaN.
        one_call_checks={"cpu": frozenset({"labels", "rows"})},
        one_call_flags={"cuda": frozenset({"labels", "rows"})},
    ),
    # Proxy-NCA, Normalized Softmax, CosFace, ArcFace: one pair of primitives, the loss read from the settings.
    **{settings: BaseLoss(reference=softmax_reference.loss, fused=softmax_fused.loss, reference_share=None,
                          fused_op=SOFTMAX_FAMILY_OP)
       for settings in SOFTMAX_FAMILY},
}


def use_fused(implementation: str, device: torch.device, op: str = PROBE_OP) -> bool:
    """Whether the compiled kernels run for `implementation` on `device`; "fused" without them is an error."""
    validation.check_implementation(implementation)
    available = has_kernel(device.type, op)
    if implementation == "fused" and not available:
        raise RuntimeError(f"implementation='fused': {missing_kernels_message(device.type, op)}")
    return implementation == "fused" or (implementation == "auto" and available)


class Plan(NamedTuple):
    """How a loss call runs.

    path: REFERENCE (the reference's primitives composed), COMPOSED (the
        compiled operators composed) or ONE_CALL (the whole SEE loss in one op).
    primitives: the steps of the composition, with the base loss's scoring
        primitive as `loss` (chunk_bytes bound where the kernels take it).
    share: a process's share of the classes in the scoring primitive's
        arguments, with keywords class_offset, total_classes, chunk_bytes.
    one_call: the one-call function (BaseLoss.one_call) when path is ONE_CALL.
    kernel_checks: the value checks the kernel makes itself, of the groups
        of validation.check_values ("labels", "rows"), rows in the kernel's dtype.
    kernel_flags: those its kernels flag on the device instead (the call's
        value flags, which a deferred check reads).
    chunk_bytes: the similarities' memory budget (None: the default).
    products: the float32 products the one-call op may use ("float32", "tf32", "bf16").
    """

    path: str
    primitives: SEEPrimitives
    share: Callable
    one_call: Callable | None = None
    kernel_checks: frozenset = frozenset()
    kernel_flags: frozenset = frozenset()
    chunk_bytes: int | None = None
    products: str = "float32"

    @property
    def is_reference(self) -> bool:
        """The reference always reads the values it is given (it is the specification)."""
        return self.path == REFERENCE

    def unchecked_values(self, dtype: torch.dtype, flags_read: bool, **groups) -> dict:
        """The value groups (as validation.check_values takes them) the kernel does not check itself.

        flags_read: whether the kernel's flags will be read (a deferred check), so that the groups it
        flags count as checked. The kernel checks rows in its dtype: rows of a loss in half precision
        are checked here, in theirs.
        """
        checked_by_kernel = set(self.kernel_checks) | (set(self.kernel_flags) if flags_read else set())
        if fused.kernel_dtype(dtype) != dtype:
            checked_by_kernel.discard("rows")
        return {name: values for name, values in groups.items() if name not in checked_by_kernel}

    def run(self, x, y, proxies, expansion, settings, generator=None, noise=None):
        """(loss, SEEStats, value flags) of the SEE loss (composition.see_loss's arguments) by this plan;
        the value flags are the kernel's where it flags values (kernel_flags), else None."""
        if self.path == ONE_CALL:
            loss, stats, flags = self.one_call(x, y, proxies, expansion, settings, generator, noise, self.chunk_bytes,
                                               self.products)
            return loss, stats, flags if self.kernel_flags else None
        return (*composition.see_loss(x, y, proxies, expansion, settings, self.primitives, generator, noise), None)


def base_loss(settings) -> BaseLoss:
    """The primitives of the base loss whose settings are `settings`."""
    try:
        return BASE_LOSSES[type(settings)]
    except KeyError:
        known = ", ".join(cls.__name__ for cls in BASE_LOSSES)
        raise TypeError(f"settings must be the settings of a base loss ({known}), got {type(settings).__name__}") \
            from None


def plan(implementation: str, device: torch.device, settings, expansion=None, chunk_bytes: int | None = None,
         products: str = "float32") -> Plan:
    """The plan of a loss with base-loss `settings` (e.g. a ProxyAnchorSettings) on `device`.

    expansion: the SphericalExpansion of a SEE loss, or None for the base
    loss alone (with or without given synthetic rows). The whole SEE loss
    runs in one op where the base loss has one, the dispatcher has its
    kernel for the device, and the synthetic points are detached.

    This is also the one place that chooses between the flash-style CUDA
    op and the cuBLAS composition, and it does not look at the shape: the
    composition costs a host synchronisation and about 70 launches per call
    (~0.33 ms of host time predicted; the one-call op: 7 launches, none
    waited for), and its products are cuBLAS's fp32 ones, where the op's
    are split-tf32 on tensor cores. No measurement yet shows a shape,
    small C included, where the composition is faster.
    benchmarks/gpu_paths.py times both at CUB-like, SOP-like and 10^6
    classes; a crossover it measures belongs here.
    """
    loss = base_loss(settings)
    if not use_fused(implementation, device, loss.fused_op or PROBE_OP):
        return Plan(REFERENCE, reference.PRIMITIVES._replace(loss=loss.reference), loss.reference_share,
                    chunk_bytes=chunk_bytes)
    if (expansion is not None and expansion.expands and expansion.detach_synthetic and loss.one_call_op is not None
            and has_kernel(device.type, loss.one_call_op)):
        return Plan(ONE_CALL, _fused_primitives(loss.fused, chunk_bytes, device.type), loss.fused, loss.one_call,
                    loss.one_call_checks.get(device.type, frozenset()),
                    loss.one_call_flags.get(device.type, frozenset()), chunk_bytes, products)
    return Plan(COMPOSED, _fused_primitives(loss.fused, chunk_bytes, device.type), loss.fused,
                chunk_bytes=chunk_bytes)


@functools.lru_cache(maxsize=16)
def _fused_primitives(scoring: Callable, chunk_bytes: int | None, device_type: str) -> SEEPrimitives:
    if chunk_bytes is not None:
        scoring = functools.partial(scoring, chunk_bytes=chunk_bytes)
    return fused.PRIMITIVES._replace(draws=_fused_draws(device_type), loss=scoring)


def _fused_draws(device_type: str) -> Callable:
    """The stream's draws for the fused path: by its kernel where the device has one."""
    return fused.draws if has_kernel(device_type, NOISE_OP) else fused.pytorch_draws


class OpPlan(NamedTuple):
    """How a call of one operator runs: `run` (with the arguments of that operator's plan), and whether
    it is the reference's (which reads the values it is given whatever check_values says)."""

    run: Callable
    is_reference: bool


def _reference_slerp(a, b, t_rows, dtype):
    return reference.slerp(a.to(dtype), b.to(dtype), t_rows)


def _reference_mmd_centers(num_centers, dim, radius, device):
    return reference.mmd_centers(num_centers, dim, radius).to(device)


def _reference_expansion(z, w, n, noise, generator, dtype):
    if noise is None:
        noise = reference.expansion_noise(z.shape[0], n, z.shape[1], dtype, z.device, generator)
    return reference.PRIMITIVES.expand(z, w, n, noise).to(dtype)


def _fused_expansion(z, w, n, noise, generator, dtype):
    if noise is None:
        seed = fused.PRIMITIVES.draw_seed(generator, z.device)
        noise = _fused_draws(z.device.type)(seed, (z.shape[0], n - 1, z.shape[1]), dtype)
    return fused.expand(z, w, n, noise).to(dtype)


def slerp_plan(implementation: str, device: torch.device) -> OpPlan:
    """run(a, b, t_rows, dtype): slerp by the op or the reference."""
    if use_fused(implementation, device):
        return OpPlan(fused.slerp, False)
    return OpPlan(_reference_slerp, True)


def mmd_centers_plan(implementation: str, device: torch.device) -> OpPlan:
    """run(num_centers, dim, radius, device): the centers by the op or the reference."""
    if use_fused(implementation, device, MMD_CENTERS_OP):
        return OpPlan(fused.mmd_centers, False)
    return OpPlan(_reference_mmd_centers, True)


def expansion_plan(implementation: str, device: torch.device, w_needs_grad: bool) -> OpPlan:
    """run(z, w, n, noise, generator, dtype): the expansion by the op or the reference.

    The op treats w as a constant: a w that needs a gradient takes the reference ("fused": an error).
    """
    if not use_fused(implementation, device):
        return OpPlan(_reference_expansion, True)
    if w_needs_grad:
        if implementation == "fused":
            raise ValueError("the fused expansion does not differentiate w.r.t. w; pass w.detach()")
        return OpPlan(_reference_expansion, True)
    return OpPlan(_fused_expansion, False)

