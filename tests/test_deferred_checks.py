"""check_values=True on CUDA without a host read before the loss is queued (see_cuda/deferred_checks.py).

Without a GPU the CUDA policy is applied to CPU tensors (validation.values_are_deferred made
to say yes), which runs the same code but for the asynchronous copy and its event; the
kernels' flags (the one-call CUDA op's last output) are given by hand; the GPU tests at
the end run the real ones where a GPU is present.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import see_cuda
from see_cuda import deferred_checks, validation

from conftest import requires_cpu_kernels, requires_cuda_kernels

READ_BACK = "aten._local_scalar_dense.default"  # what .item(), bool() and int() of a tensor run


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.fixture(autouse=True)
def no_pending_checks():
    deferred_checks._PENDING.clear()
    yield
    deferred_checks._PENDING.clear()


@pytest.fixture
def deferred(monkeypatch):
    """The CUDA policy on CPU tensors: checks queued, not read."""
    monkeypatch.setattr(validation, "values_are_deferred", lambda device, check_values: check_values)


def batch(B=20, D=24, C=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=dtype, requires_grad=True)
    proxies = torch.randn(C, D, generator=g, dtype=dtype, requires_grad=True)
    return x, torch.randint(0, C, (B,), generator=g), proxies


CALLS = {
    "proxy_anchor_loss": lambda x, y, p, **kw: see_cuda.proxy_anchor_loss(x, y, p, **kw),
    # Not detached: the composed path, whose CPU kernels leave the checks to the call (the one-call
    # CPU op checks its values itself, and nothing is then queued).
    "fused_see_loss": lambda x, y, p, **kw: see_cuda.fused_see_loss(x, y, p, n_expansion=4, detach_synthetic=False,
                                                                     generator=torch.Generator().manual_seed(1), **kw),
    "arcface_loss": lambda x, y, p, **kw: see_cuda.arcface_loss(x, y, p.t(), **kw),
}


@requires_cpu_kernels
@pytest.mark.parametrize("call", CALLS)
def test_a_passing_call_reads_nothing_and_returns_the_checked_loss_and_gradients(deferred, call):
    x, y, proxies = batch()
    recorder = RecordOps()
    with recorder:
        loss = CALLS[call](x, y, proxies)
    assert READ_BACK not in recorder.ops
    assert deferred_checks._PENDING  # queued, not read
    loss.backward()
    assert deferred_checks._PENDING  # nor does the backward wait for it
    deferred_grads = x.grad.clone(), proxies.grad.clone()
    x.grad = proxies.grad = None
    expected = CALLS[call](x, y, proxies, check_values=False)
    assert not deferred_checks._PENDING  # the next call found it arrived and passed
    expected.backward()
    assert torch.equal(loss.detach(), expected.detach())  # × 1.0 is exact
    assert torch.equal(deferred_grads[0], x.grad) and torch.equal(deferred_grads[1], proxies.grad)


@requires_cpu_kernels
def test_a_failing_call_gives_a_nan_loss_and_nan_gradients_and_its_error_later(deferred):
    x, y, proxies = batch()
    bad = x.detach().clone()
    bad[3, 2] = float("inf")
    bad.requires_grad_(True)
    loss = see_cuda.proxy_anchor_loss(bad, y, proxies, implementation="fused")  # no error yet
    assert torch.isnan(loss)
    loss.backward()  # no wait, no error: the gradients are NaN
    assert torch.isnan(bad.grad).all() and torch.isnan(proxies.grad).all()
    with pytest.raises(ValueError, match="embeddings contains NaN or infinite values"):
        see_cuda.wait_for_value_checks()
    assert not deferred_checks._PENDING


@requires_cpu_kernels
def test_without_a_backward_the_next_call_raises_the_earlier_failure_once(deferred):
    x, y, proxies = batch()
    see_cuda.proxy_anchor_loss(x, y, proxies * float("nan"), implementation="fused")
    with pytest.raises(ValueError, match="an earlier call's value check failed: proxies contains NaN"):
        see_cuda.proxy_anchor_loss(x, y, proxies)
    assert torch.isfinite(see_cuda.proxy_anchor_loss(x, y, proxies))  # raised once, then gone


@requires_cpu_kernels
def test_wait_for_value_checks_raises_a_pending_failure_and_passes_when_all_passed(deferred):
    x, y, proxies = batch()
    see_cuda.proxy_anchor_loss(x, y, proxies)
    see_cuda.wait_for_value_checks()  # a passing check: nothing raised
    see_cuda.proxy_anchor_loss(x.detach() * float("inf"), y, proxies)
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        see_cuda.wait_for_value_checks()
    assert not deferred_checks._PENDING
    see_cuda.wait_for_value_checks()


@pytest.mark.parametrize("case", ["label high", "label low", "nan row", "row overflows", "zero draw", "nan noise"])
def test_a_deferred_error_says_what_the_immediate_check_says(case):
    x, y, proxies = batch(dtype=torch.float32)
    x, proxies = x.detach(), proxies.detach()
    noise = torch.randn(20, 3, 24)
    groups = {"rows": {"embeddings": x, "proxies": proxies}, "labels": {"labels": (y, 6)}, "noise": {"noise": noise}}
    if case == "label high":
        y[5] = 6
    elif case == "label low":
        y[0] = -3
    elif case == "nan row":
        proxies[1, 1] = float("nan")
    elif case == "row overflows":
        x[2] = 3e19  # each square is finite in float32, their sum is not
    elif case == "zero draw":
        noise[4, 1] = 0
    else:
        noise[0, 0, 0] = float("nan")
    with pytest.raises(ValueError) as immediate:
        validation.check_values(dtype=torch.float32, **groups)
    error = validation.queue_value_checks(dtype=torch.float32, **groups).error(wait=True)
    assert str(error) == str(immediate.value)


def test_passing_checks_give_no_error_and_empty_ones_pass():
    x, y, proxies = batch()
    assert validation.queue_value_checks(rows={"x": x.detach()}, labels={"y": (y, 6)}).error(wait=True) is None
    empty = torch.empty(0, 24, dtype=torch.float64)
    assert validation.queue_value_checks(rows={"x": empty}, labels={"y": (y[:0], 6)}).error(wait=True) is None


def test_the_reference_and_check_values_false_are_not_deferred(deferred):
    x, y, proxies = batch()
    with pytest.raises(ValueError, match="labels must lie"):  # the reference reads at once
        see_cuda.proxy_anchor_loss(x, y + 6, proxies, implementation="reference")
    assert not deferred_checks._PENDING
    see_cuda.proxy_anchor_loss(x, y, proxies, check_values=False, implementation="reference")
    assert not deferred_checks._PENDING


# ---------------------------------------------------------------- the kernels' flags
def flagged_check(bits, x, y, proxies, num_classes=6):
    return validation.flagged_values_check(torch.tensor(bits), {"embeddings": x, "proxies": proxies},
                                           {"labels": (y, num_classes)}, torch.float64)


def test_unflagged_values_pass():
    x, y, proxies = batch()
    assert flagged_check(0, x, y, proxies).error(wait=True) is None


@pytest.mark.parametrize("case", ["label high", "label low", "nan embedding", "row overflows", "inf proxy"])
def test_a_flagged_call_says_what_the_immediate_check_says_while_its_arguments_are_unchanged(case):
    x, y, proxies = (t.detach() for t in batch())
    bit = validation.KERNEL_FLAG_BITS
    if case == "label high":
        y[5], bits = 6, bit["labels"]
    elif case == "label low":
        y[0], bits = -3, bit["labels"]
    elif case == "nan embedding":
        x[1, 1], bits = float("nan"), bit["embeddings"]
    elif case == "row overflows":
        x[2], bits = 1e160, bit["embeddings"]  # each square is finite in float64, their sum is not
    else:
        proxies[4, 0], bits = float("inf"), bit["proxies"]
    with pytest.raises(ValueError) as immediate:
        validation.check_values(rows={"embeddings": x, "proxies": proxies}, labels={"labels": (y, 6)},
                                dtype=torch.float64)
    assert str(flagged_check(bits, x, y, proxies).error(wait=True)) == str(immediate.value)


def test_a_flagged_call_whose_arguments_changed_since_names_the_flagged_argument_without_its_values():
    x, y, proxies = batch()
    y[0] = 9
    check = flagged_check(validation.KERNEL_FLAG_BITS["labels"], x, y, proxies)
    y[0] = 1  # e.g. a reused buffer: the values the kernel saw are gone
    message = str(check.error(wait=True))
    assert message.startswith("labels must lie in [0, 6) (the number of proxies)") and "changed in place" in message
    check = flagged_check(validation.KERNEL_FLAG_BITS["proxies"], x, y, proxies)
    with torch.no_grad():
        proxies.add_(1.0)  # an optimizer step
    assert str(check.error(wait=True)).startswith("proxies contains NaN or infinite values or a row")


@requires_cpu_kernels
def test_a_flagged_call_raises_at_the_next_call_once(deferred):
    x, y, proxies = batch()
    y[2] = 6
    deferred_checks.queue(flagged_check(validation.KERNEL_FLAG_BITS["labels"], x, y, proxies))
    y_ok = y.clone()
    y_ok[2] = 0
    with pytest.raises(ValueError, match=r"an earlier call's value check failed: labels must lie in \[0, 6\)"):
        see_cuda.fused_see_loss(x, y_ok, proxies)
    assert torch.isfinite(see_cuda.fused_see_loss(x, y_ok, proxies))  # raised once, then gone


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_on_a_gpu_a_bad_label_is_nan_at_once_with_nan_gradients_and_an_error_later(device):
    x, y, proxies = (t.detach().to(device).requires_grad_(t.is_floating_point()) for t in batch(dtype=torch.float32))
    y = y.detach()
    y[0] = 99
    loss = see_cuda.fused_see_loss(x, y, proxies)  # the one-call op: its kernels flag the label
    assert torch.isnan(loss)
    loss.backward()
    assert torch.isnan(x.grad).all() and torch.isnan(proxies.grad).all()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 6\) \(the number of proxies\), got values in "
                                         r"\[0, 99\]"):
        see_cuda.wait_for_value_checks()
    see_cuda.wait_for_value_checks()  # nothing left pending


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_on_a_gpu_a_passing_call_queues_only_the_kernels_flags(device):
    x, y, proxies = (t.detach().to(device).requires_grad_(t.is_floating_point()) for t in batch(dtype=torch.float32))
    see_cuda.fused_see_loss(x, y.to(device), proxies).backward()
    assert len(deferred_checks._PENDING) == 1
    see_cuda.wait_for_value_checks()
    assert not deferred_checks._PENDING


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_on_a_gpu_checked_values_are_refused_inside_a_cuda_graph_capture(device):
    x, y, proxies = (t.detach().to(device) for t in batch(dtype=torch.float32))
    see_cuda.fused_see_loss(x, y, proxies, check_values=False)  # warm up outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(ValueError, match="check_values=False inside the capture"):
        with torch.cuda.graph(graph):
            see_cuda.fused_see_loss(x, y, proxies)


def test_the_deferred_check_of_a_see_loss_costs_under_50_operations_and_reads_nothing():
    # What README states: the device operations the checks of fused_see_loss's arguments (rows,
    # labels, no noise) and the loss's scaling add, each a launch on a GPU.
    x, y, proxies = batch(B=180, D=128, C=1000, dtype=torch.float32)
    recorder = RecordOps()
    with recorder:
        pending = validation.queue_value_checks(rows={"embeddings": x.detach(), "proxies": proxies.detach()},
                                                labels={"labels": (y, 1000)}, dtype=torch.float32)
        deferred_checks.checked(torch.zeros((), requires_grad=True), pending)
    assert len(recorder.ops) < 50, recorder.ops
    assert READ_BACK not in recorder.ops
