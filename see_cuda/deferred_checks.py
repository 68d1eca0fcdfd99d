"""check_values=True on CUDA tensors without reading the device before the loss is queued.

A loss call on CUDA tensors does not wait for its value checks. They are queued on the
device with the loss: one flag per check, and each label tensor's (min, max), copied to
host memory without waiting (an event marks their arrival). The loss is multiplied by 1
where every check passed and by NaN where one failed, so a failed call's loss and every
gradient through it are NaN. The ValueError the CPU raises at once (naming the argument)
is raised, for a failed call, by whichever comes first:

- the loss's backward, which waits for the checks before it computes any gradient (so a
  failed call's backward raises and no gradient is accumulated);
- the next see_cuda call that finds the checks arrived (it never waits for them);
- `see_cuda.wait_for_value_checks()`, which waits for every check still pending.

A call whose checks passed leaves no trace. Under torch.compile the checks are read as
before (validation.check_values).
"""
from __future__ import annotations

import threading
from typing import Callable

import torch

# A check's message from the labels' host (min, max) rows (m x 2, or None).
Message = Callable[[torch.Tensor | None], str]


class PendingCheck:
    """One call's checks on their way to the host: flags (k,) bool, ranges (m, 2) int64 or None, and
    per flag the message of its failure, in the order the CPU checks report them."""

    def __init__(self, flags: torch.Tensor, ranges: torch.Tensor | None, messages: list[Message]):
        self.passed = flags.all()
        if flags.is_cuda:
            # non_blocking copies to page-locked host memory; the event marks their arrival.
            self._flags = flags.to("cpu", non_blocking=True)
            self._ranges = None if ranges is None else ranges.to("cpu", non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._flags, self._ranges, self._event = flags, ranges, None
        self._messages = messages

    def arrived(self) -> bool:
        return self._event is None or self._event.query()

    def error(self, wait: bool) -> ValueError | None:
        """The failure's ValueError, None if every check passed; wait: for the flags to arrive (else
        the caller knows they have)."""
        if wait and self._event is not None:
            self._event.synchronize()
        for flag, message in zip(self._flags.tolist(), self._messages):
            if not flag:
                return ValueError(message(self._ranges))
        return None


_PENDING: list[PendingCheck] = []
_LOCK = threading.Lock()


def queue(check: PendingCheck) -> None:
    with _LOCK:
        _PENDING.append(check)


def _take(check: PendingCheck) -> bool:
    """Removes `check` from the pending ones; False if another path has already taken it."""
    with _LOCK:
        if check in _PENDING:
            _PENDING.remove(check)
            return True
        return False


def _raise_first_failure(checks: list[PendingCheck], wait: bool) -> None:
    for check in checks:
        if _take(check):
            error = check.error(wait)
            if error is not None:
                raise ValueError(f"an earlier call's value check failed: {error}")


def raise_arrived() -> None:
    """Raises the error of the first earlier call whose checks have arrived and failed; drops those that passed.
    Never waits."""
    with _LOCK:
        arrived = [check for check in _PENDING if check.arrived()]
    _raise_first_failure(arrived, wait=False)


def wait_for_value_checks() -> None:
    """Waits for the value checks of every earlier see_cuda call on CUDA tensors still pending (made with
    check_values=True, the default) and raises the first failure's ValueError; returns when all passed."""
    with _LOCK:
        pending = list(_PENDING)
    _raise_first_failure(pending, wait=True)


class _CheckedLoss(torch.autograd.Function):
    """loss × (1 if the checks passed else NaN); the backward waits for the checks and raises a failure."""

    @staticmethod
    def forward(ctx, loss, scale, check):
        ctx.check = check
        ctx.save_for_backward(scale)
        return loss * scale

    @staticmethod
    def backward(ctx, grad):
        check = ctx.check
        if _take(check):
            error = check.error(wait=True)
            if error is not None:
                raise error
        (scale,) = ctx.saved_tensors
        return grad * scale, None, None


def checked(loss: torch.Tensor, check: PendingCheck) -> torch.Tensor:
    """The loss a call returns: NaN if its checks failed, its errors raised as the module says."""
    queue(check)
    scale = torch.where(check.passed, 1.0, float("nan")).to(loss.dtype)
    return _CheckedLoss.apply(loss, scale, check)
