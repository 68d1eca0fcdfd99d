"""The one-call SEE loss on CUDA: 7 launches forward (the seed's draw and the op's 6), 2 backward, nothing read.

The op's launches are counted without a GPU by the launch recorder of
csrc/tests/test_cuda_see_loss.cpp at the SOP-like shape (6 forward; its backward op,
see_loss_fused_backward, 2). What runs around the op is the same Python on every
device, so it is recorded here on the CPU, with the CUDA plan's value checks (the
kernels' flags, read later) standing in for the CPU op's own: the seed's draw is the
only other device operation, and nothing is read back. The CPU op forms its gradients
in the forward, and its backward (csrc/see_loss_autograd.cpp) is two elementwise
products, in place (the op's gradients become the inputs' .grad without a copy)
unless the graph is kept.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import see_cuda
from see_cuda import ProxyAnchorSettings, deferred_checks, dispatch, validation

from conftest import requires_cpu_kernels, requires_cuda_kernels

READ_BACK = "aten._local_scalar_dense.default"  # what .item(), bool() and int() of a tensor run
# No kernel on any device: views, and a dtype computed on the host.
NO_KERNEL = {"aten.detach.default", "aten.view.default", "aten.promote_types.default"}


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def sop_like(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, C, D = 180, 11318, 128
    x = torch.randn(B, D, generator=g, requires_grad=True)
    proxies = torch.randn(C, D, generator=g, requires_grad=True)
    return x, torch.randint(0, C, (B,), generator=g), proxies


def raw_call(x, labels, proxies, n=4):
    return torch.ops.see_cuda.see_loss_fused(x, labels, proxies, None, torch.tensor(7, dtype=torch.int64), n, 5, 0.0,
                                             0.2, 32.0, 0.1, True, None)


@pytest.fixture
def cuda_checks(monkeypatch):
    """The CUDA plan's checks on CPU tensors: deferred, and the kernels' flags read instead of the values."""
    monkeypatch.setattr(validation, "values_are_deferred", lambda device, check_values: check_values)
    base = dispatch.BASE_LOSSES[ProxyAnchorSettings]
    monkeypatch.setitem(dispatch.BASE_LOSSES, ProxyAnchorSettings,
                        base._replace(one_call_checks={}, one_call_flags={"cpu": frozenset({"labels", "rows"})}))
    deferred_checks._PENDING.clear()
    yield
    deferred_checks._PENDING.clear()


@requires_cpu_kernels
def test_with_its_defaults_a_call_is_the_seeds_draw_and_the_op_and_reads_nothing(cuda_checks):
    x, labels, proxies = sop_like()
    recorder = RecordOps()
    with recorder:
        loss = see_cuda.fused_see_loss(x, labels, proxies)  # the defaults: check_values=True, fraction mode
    device_ops = [op for op in recorder.ops if op not in NO_KERNEL]
    assert device_ops == ["aten.randint.low_generator", "see_cuda.see_loss_fused.default"], recorder.ops
    assert READ_BACK not in recorder.ops
    assert len(deferred_checks._PENDING) == 1  # the kernel's flags, on their way
    grad_loss = torch.ones(())  # made outside: the incoming gradient is the caller's (or autograd's fill)
    recorder = RecordOps()
    with recorder:
        loss.backward(grad_loss)
    assert [op for op in recorder.ops if op not in NO_KERNEL] == ["aten.mul_.Tensor", "aten.mul_.Tensor"]
    see_cuda.wait_for_value_checks()  # they passed


@requires_cpu_kernels
def test_the_backward_scales_the_ops_gradients_in_place_and_keeps_no_second_copy():
    x, labels, proxies = sop_like(1)
    loss, grad_x, grad_proxies, _, _, flags, saved_values, saved_indices = raw_call(x, labels, proxies)
    assert int(flags) == 0  # the CPU op raises instead of flagging
    assert saved_values.numel() == 0 and saved_indices.numel() == 0  # and forms the gradients now: nothing kept
    expected = grad_proxies.detach().clone() * 3.0, grad_x.detach().clone() * 3.0
    pointers = grad_proxies.data_ptr(), grad_x.data_ptr()
    del grad_x, grad_proxies  # held by the caller, they would be copied rather than aliased by .grad
    grad_loss = torch.tensor(3.0)  # made outside: the incoming gradient is the caller's
    recorder = RecordOps()
    with recorder:
        loss.backward(grad_loss)
    launches = [op for op in recorder.ops if op not in NO_KERNEL]
    assert launches == ["aten.mul_.Tensor", "aten.mul_.Tensor"], recorder.ops
    assert READ_BACK not in recorder.ops
    # autograd took the op's own gradient as .grad: one C x D gradient in memory, not two.
    assert (proxies.grad.data_ptr(), x.grad.data_ptr()) == pointers
    assert torch.equal(proxies.grad, expected[0]) and torch.equal(x.grad, expected[1])  # × g is exact either way


@requires_cpu_kernels
def test_a_kept_graph_is_scaled_out_of_place_so_a_second_backward_gives_the_same_gradients():
    x, labels, proxies = sop_like(2)
    loss = raw_call(x, labels, proxies)[0]
    first = torch.autograd.grad(loss, (x, proxies), torch.tensor(2.0), retain_graph=True)
    second = torch.autograd.grad(loss, (x, proxies), torch.tensor(2.0))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=requires_cuda_kernels)])
def test_on_a_gpu_the_backward_is_the_backward_op_alone_and_a_kept_graph_gives_it_again(device):
    x, labels, proxies = (t.detach().to(device).requires_grad_(t.is_floating_point()) for t in sop_like(3))
    loss = see_cuda.fused_see_loss(x, labels, proxies, check_values=False)
    grad_loss = torch.tensor(2.0, device=device)
    recorder = RecordOps()
    with recorder:
        first = torch.autograd.grad(loss, (x, proxies), grad_loss, retain_graph=True)
    assert [op for op in recorder.ops if op not in NO_KERNEL] == ["see_cuda.see_loss_fused_backward.default"]
    assert READ_BACK not in recorder.ops
    second = torch.autograd.grad(loss, (x, proxies), grad_loss)  # the saved state is read, never changed
    assert all(torch.equal(a, b) for a, b in zip(first, second))
