"""The ops as PyTorch operators: opcheck, torch.compile, and what the build reports."""
import pytest
import torch

import see_cuda
from see_cuda import reference
from conftest import requires_cpu_kernels

pytestmark = requires_cpu_kernels


def op_samples():
    g = torch.Generator().manual_seed(0)
    z, w = torch.randn(4, 10, generator=g, dtype=torch.float64), torch.randn(4, 10, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 3, 10, generator=g, dtype=torch.float64)
    x, proxies = torch.randn(8, 10, generator=g, dtype=torch.float64), torch.randn(5, 10, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 2, 2, 0, 4])
    synthetic = torch.randn(6, 10, generator=g, dtype=torch.float64)
    synthetic_labels = torch.tensor([0, 0, 1, 1, 2, 2])
    ops = torch.ops.see_cuda
    return [
        (ops.expansion.default, (z.requires_grad_(), w, noise)),
        (ops.slerp.default, (z.clone().requires_grad_(), w.clone().requires_grad_(),
                             torch.rand(4, generator=g, dtype=torch.float64).requires_grad_())),
        (ops.proxy_anchor_fused.default, (x.requires_grad_(), y, proxies.requires_grad_(), synthetic, synthetic_labels,
                                          32.0, 0.1, 0.2, True, False)),
        (ops.mmd_centers_.default, (torch.empty(5, 6, dtype=torch.float64), 1.0)),
        (ops.see_loss_fused.default, (x.clone().requires_grad_(), y, proxies.clone().requires_grad_(), None,
                                      torch.tensor(7), 3, 4, 0.0, 0.2, 32.0, 0.1, True)),
        (ops.see_loss_fused.default, (x.clone().requires_grad_(), y, proxies.clone().requires_grad_(),
                                      torch.randn(8, 2, 10, generator=g, dtype=torch.float64), torch.tensor(0), 3,
                                      -1, 0.1, 0.2, 32.0, 0.1, True)),
    ]


@pytest.mark.parametrize("op, args", op_samples(), ids=lambda v: str(v).split(".")[-2] if hasattr(v, "name") else "")
def test_opcheck(op, args):
    tests = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    if op is not torch.ops.see_cuda.mmd_centers_.default:
        tests += ("test_autograd_registration",)
    torch.library.opcheck(op, args, test_utils=tests)


def test_fused_see_loss_under_torch_compile_matches_eager():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 24, generator=g, requires_grad=True)
    y = torch.randint(0, 6, (32,), generator=g)
    proxies = torch.randn(6, 24, generator=g, requires_grad=True)
    noise = torch.randn(32, 7, 24, generator=g)

    def step(a, p):
        return see_cuda.fused_see_loss(a, y, p, n_expansion=8, noise=noise, implementation="fused")

    eager = step(x, proxies)
    eager_grads = torch.autograd.grad(eager, (x, proxies))
    compiled = torch.compile(step, backend="aot_eager")(x, proxies)
    compiled_grads = torch.autograd.grad(compiled, (x, proxies))
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(a, b)


def test_backends_report_the_cpu_kernels():
    report = see_cuda.backends()
    assert report["cpu"] is True
    assert set(report) == {"cpu", "cuda", "cuda_device"}
