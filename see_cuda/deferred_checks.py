"""check_values=True on CUDA tensors without reading the device before the loss is queued.

A loss call on CUDA tensors does not wait for its value checks. They travel to the host
behind the loss: the one-call op's kernels flag a bad label or row on their way (its value
flags, an output: no extra launch); elsewhere the checks are queued as a few reductions. Either
way the flags are copied to host memory without waiting, and an event marks their
arrival. A failed call's loss is NaN (the kernels make it so, or it is multiplied by
NaN), so every gradient through it is NaN. The ValueError the CPU raises at once (naming
the argument) is raised, for a failed call, by whichever comes first:

- the next see_cuda call that finds the flags arrived (it never waits for them);
- `see_cuda.wait_for_value_checks()`, which waits for every check still pending.

Nothing waits in between: the backward of a failed call gives NaN gradients, and an
optimizer step after it applies them (a GradScaler skips such a step). Call
wait_for_value_checks() before the step to be told first. A call whose checks passed
leaves no trace. Under torch.compile the checks are read as before (validation.check_values).
"""
from __future__ import annotations

import threading
from typing import Callable

import torch

# The failure's message from the host copies of the flags (None: every check passed).
Failure = Callable[..., "str | None"]


class PendingCheck:
    """One call's checks on their way to the host: `values`, device tensors (copied without
    waiting), and `failure(*host_values)`, the message of the first failure in the order the
    CPU checks report them, or None. passed: a 0-d bool on the device for the loss's NaN where
    the checks are reductions; None where the kernel made a failed call's loss NaN itself."""

    def __init__(self, values: tuple[torch.Tensor, ...], failure: Failure, passed: torch.Tensor | None = None):
        self.passed = passed
        if values[0].is_cuda:
            # non_blocking copies to page-locked host memory; the event marks their arrival.
            self._values = tuple(v.to("cpu", non_blocking=True) for v in values)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._values, self._event = values, None
        self._failure = failure

    def arrived(self) -> bool:
        return self._event is None or self._event.query()

    def error(self, wait: bool) -> ValueError | None:
        """The failure's ValueError, None if every check passed; wait: for the flags to arrive (else
        the caller knows they have)."""
        if wait and self._event is not None:
            self._event.synchronize()
        message = self._failure(*self._values)
        return None if message is None else ValueError(message)


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


def checked(loss: torch.Tensor, check: PendingCheck) -> torch.Tensor:
    """The loss a call returns, its check queued: NaN if the check's reductions fail (a kernel's
    flagged loss is NaN already)."""
    queue(check)
    if check.passed is None:
        return loss
    return loss * torch.where(check.passed, 1.0, float("nan")).to(loss.dtype)
