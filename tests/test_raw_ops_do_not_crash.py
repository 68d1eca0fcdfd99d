"""No call of a raw op (torch.ops.see_cuda.*) that its schema accepts may crash the process.

The public functions validate their input; the ops are reachable without them
(torch.ops, torch.compile, other libraries), so each must raise or return for
any shapes, dtypes and scalars: an exception is fine, a signal is not. The
calls run in a child process, one after the other, each announced before it
starts; a child that dies by a signal names the call it was in, and a new
child carries on after it.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest
import torch

import see_cuda

from conftest import HAVE_CPU_KERNELS

F32, F64, I64 = torch.float32, torch.float64, torch.int64


def t(*shape, dtype=F64):
    """Standard normal numbers of a shape (0-size dims allowed), int64 zeros for integer dtypes."""
    if dtype.is_floating_point:
        return torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    return torch.zeros(*shape, dtype=dtype)


SEED = torch.tensor(3)
# name -> (op name, a function building the arguments). Shapes the schemas accept but the
# kernels' contracts may not: zero sizes everywhere, D = 0, n = 1, empty noise, k = 0, C = 0,
# mismatched sizes, wrong dtypes, non-contiguous inputs, and scalars at the edges.
CASES = {
    "mmd_centers_-empty": ("mmd_centers_", lambda: (t(0, 0), 1.0)),
    "mmd_centers_-no-columns": ("mmd_centers_", lambda: (t(5, 0), 1.0)),
    "mmd_centers_-too-few-columns": ("mmd_centers_", lambda: (t(6, 2), 1.0)),
    "mmd_centers_-float32": ("mmd_centers_", lambda: (t(3, 3, dtype=F32), 1.0)),
    "mmd_centers_-not-contiguous": ("mmd_centers_", lambda: (t(4, 6).t(), 1.0)),
    "mmd_centers_-1d": ("mmd_centers_", lambda: (t(4), 1.0)),
    "mmd_centers_-nan-radius": ("mmd_centers_", lambda: (t(3, 3), float("nan"))),
    "philox_normal_-empty": ("philox_normal_", lambda: (t(0), SEED)),
    "philox_normal_-empty-2d": ("philox_normal_", lambda: (t(0, 7), SEED)),
    "philox_normal_-int-out": ("philox_normal_", lambda: (t(4, dtype=I64), SEED)),
    "philox_normal_-seed-1d": ("philox_normal_", lambda: (t(4), torch.tensor([1, 2]))),
    "philox_normal_-seed-empty": ("philox_normal_", lambda: (t(4), torch.tensor([], dtype=I64))),
    "philox_normal_-seed-float": ("philox_normal_", lambda: (t(4), torch.tensor(1.5))),
    "philox_normal_-not-contiguous": ("philox_normal_", lambda: (t(4, 6).t(), SEED)),
    "expansion-k0": ("expansion", lambda: (t(0, 5), t(0, 5), t(0, 2, 5))),
    "expansion-n1": ("expansion", lambda: (t(3, 5), t(3, 5), t(3, 0, 5))),
    "expansion-D0": ("expansion", lambda: (t(3, 0), t(3, 0), t(3, 0, 0))),
    "expansion-D-too-small": ("expansion", lambda: (t(3, 3), t(3, 3), t(3, 2, 3))),
    "expansion-noise-rows": ("expansion", lambda: (t(3, 5), t(3, 5), t(2, 2, 5))),
    "expansion-noise-2d": ("expansion", lambda: (t(3, 5), t(3, 5), t(3, 5))),
    "expansion-w-shape": ("expansion", lambda: (t(3, 5), t(2, 5), t(3, 2, 5))),
    "expansion-dtypes": ("expansion", lambda: (t(3, 5), t(3, 5, dtype=F32), t(3, 2, 5))),
    "expansion-float16": ("expansion", lambda: tuple(v.half() for v in (t(3, 5), t(3, 5), t(3, 2, 5)))),
    "expansion-not-contiguous": ("expansion", lambda: (t(5, 3).t(), t(3, 5), t(3, 2, 5))),
    "expansion-zero-rows": ("expansion", lambda: (t(3, 5) * 0, t(3, 5) * 0, t(3, 2, 5) * 0)),
    "expansion_backward-k0": ("expansion_backward", lambda: (t(0, 3, 5), t(0, 5), t(0, 5), t(0, 2, 5))),
    "expansion_backward-grad-shape": ("expansion_backward", lambda: (t(3, 2, 5), t(3, 5), t(3, 5), t(3, 2, 5))),
    "expansion_backward-D0": ("expansion_backward", lambda: (t(3, 1, 0), t(3, 0), t(3, 0), t(3, 0, 0))),
    "expansion_backward-n1": ("expansion_backward", lambda: (t(3, 1, 5), t(3, 5), t(3, 5), t(3, 0, 5))),
    "slerp-R0": ("slerp", lambda: (t(0, 4), t(0, 4), t(0))),
    "slerp-D0": ("slerp", lambda: (t(4, 0), t(4, 0), t(4))),
    "slerp-D1": ("slerp", lambda: (t(4, 1), t(4, 1), t(4))),
    "slerp-R0-D0": ("slerp", lambda: (t(0, 0), t(0, 0), t(0))),
    "slerp-t-length": ("slerp", lambda: (t(4, 3), t(4, 3), t(2))),
    "slerp-t-2d": ("slerp", lambda: (t(4, 3), t(4, 3), t(4, 1))),
    "slerp-dtypes": ("slerp", lambda: (t(4, 3), t(4, 3, dtype=F32), t(4))),
    "slerp-not-contiguous": ("slerp", lambda: (t(3, 4).t(), t(4, 3), t(4))),
    "slerp-zero-rows": ("slerp", lambda: (t(4, 3) * 0, t(4, 3) * 0, t(4))),
    "slerp_backward-D0": ("slerp_backward", lambda: (t(4, 0), t(4, 0), t(4, 0), t(4))),
    "slerp_backward-R0": ("slerp_backward", lambda: (t(0, 3), t(0, 3), t(0, 3), t(0))),
    "slerp_backward-D1": ("slerp_backward", lambda: (t(4, 1), t(4, 1), t(4, 1), t(4))),
    "slerp_backward-grad-shape": ("slerp_backward", lambda: (t(2, 3), t(4, 3), t(4, 3), t(4))),
}


def _pa(x, labels, proxies, synthetic, synthetic_labels, alpha=32.0, margin=0.1, lam=0.2, compute_grad=True,
        synthetic_grad=True):
    return x, labels, proxies, synthetic, synthetic_labels, alpha, margin, lam, compute_grad, synthetic_grad


CASES.update({
    "proxy_anchor_fused-B0": ("proxy_anchor_fused", lambda: _pa(t(0, 4), t(0, dtype=I64), t(3, 4), t(0, 4),
                                                                t(0, dtype=I64))),
    "proxy_anchor_fused-C0": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(0, 4), t(0, 4),
                                                                t(0, dtype=I64))),
    "proxy_anchor_fused-B0-C0": ("proxy_anchor_fused", lambda: _pa(t(0, 4), t(0, dtype=I64), t(0, 4), t(0, 4),
                                                                   t(0, dtype=I64))),
    "proxy_anchor_fused-D0": ("proxy_anchor_fused", lambda: _pa(t(5, 0), t(5, dtype=I64), t(3, 0), t(2, 0),
                                                                t(2, dtype=I64))),
    "proxy_anchor_fused-labels-short": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(3, dtype=I64), t(3, 4), t(0, 4),
                                                                          t(0, dtype=I64))),
    "proxy_anchor_fused-labels-int32": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=torch.int32), t(3, 4),
                                                                          t(0, 4), t(0, dtype=I64))),
    "proxy_anchor_fused-labels-2d": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, 1, dtype=I64), t(3, 4),
                                                                       t(0, 4), t(0, dtype=I64))),
    "proxy_anchor_fused-labels-out": ("proxy_anchor_fused", lambda: _pa(t(5, 4), torch.tensor([0, 1, 2**40, -7, 3]),
                                                                        t(3, 4), t(2, 4), torch.tensor([9, -1]))),
    "proxy_anchor_fused-D-mismatch": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(3, 5), t(0, 4),
                                                                        t(0, dtype=I64))),
    "proxy_anchor_fused-dtypes": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(3, 4, dtype=F32),
                                                                    t(0, 4), t(0, dtype=I64))),
    "proxy_anchor_fused-float16": ("proxy_anchor_fused", lambda: _pa(t(5, 4).half(), t(5, dtype=I64), t(3, 4).half(),
                                                                     t(0, 4).half(), t(0, dtype=I64))),
    "proxy_anchor_fused-not-contiguous": ("proxy_anchor_fused", lambda: _pa(t(4, 5).t(), t(5, dtype=I64), t(3, 4),
                                                                            t(0, 4), t(0, dtype=I64))),
    "proxy_anchor_fused-alpha-0": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(3, 4), t(0, 4),
                                                                     t(0, dtype=I64), alpha=0.0)),
    "proxy_anchor_fused-alpha-nan": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(3, 4), t(0, 4),
                                                                       t(0, dtype=I64), alpha=float("nan"))),
    "proxy_anchor_fused-alpha-inf": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(3, 4), t(0, 4),
                                                                       t(0, dtype=I64), alpha=float("inf"))),
    "proxy_anchor_fused-alpha-negative": ("proxy_anchor_fused", lambda: _pa(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                            t(0, 4), t(0, dtype=I64), alpha=-1e300)),
    "proxy_anchor_fused-no-grad-synthetic-grad": ("proxy_anchor_fused", lambda: _pa(
        t(5, 4), t(5, dtype=I64), t(3, 4), t(2, 4), t(2, dtype=I64), compute_grad=False)),
})


def _see(x, labels, proxies, noise, seed=SEED, n=3, num_selected=2, threshold=0.0, lam=0.2, alpha=32.0, margin=0.1,
         compute_grad=True, products="float32"):
    return x, labels, proxies, noise, seed, n, num_selected, threshold, lam, alpha, margin, compute_grad, None, products


CASES.update({
    "see_loss_fused-B0": ("see_loss_fused", lambda: _see(t(0, 6), t(0, dtype=I64), t(3, 6), None, num_selected=0)),
    "see_loss_fused-B0-select": ("see_loss_fused", lambda: _see(t(0, 6), t(0, dtype=I64), t(3, 6), None)),
    "see_loss_fused-C0": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(0, 6), None)),
    "see_loss_fused-D0": ("see_loss_fused", lambda: _see(t(5, 0), t(5, dtype=I64), t(3, 0), None)),
    "see_loss_fused-n0": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None, n=0)),
    "see_loss_fused-n1": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None, n=1)),
    "see_loss_fused-n1-noise": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), t(5, 0, 6), n=1)),
    "see_loss_fused-n-negative": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None, n=-4)),
    "see_loss_fused-n-huge": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None, n=2**40)),
    "see_loss_fused-D-too-small": ("see_loss_fused", lambda: _see(t(5, 3), t(5, dtype=I64), t(3, 3), None, n=3)),
    "see_loss_fused-select-too-many": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                      num_selected=9)),
    "see_loss_fused-select-negative": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                      num_selected=-9)),
    "see_loss_fused-noise-empty": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), t(0, 2, 6))),
    "see_loss_fused-noise-shape": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), t(5, 1, 6))),
    "see_loss_fused-noise-dtype": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6),
                                                                  t(5, 2, 6, dtype=F32))),
    "see_loss_fused-noise-zero": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), t(5, 2, 6) * 0)),
    "see_loss_fused-seed-1d": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                              seed=torch.tensor([1, 2]))),
    "see_loss_fused-seed-float": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                 seed=torch.tensor(1.0))),
    "see_loss_fused-labels-out": ("see_loss_fused", lambda: _see(t(5, 6), torch.tensor([0, 1, 2, 3, -1]), t(3, 6),
                                                                 None)),
    "see_loss_fused-labels-short": ("see_loss_fused", lambda: _see(t(5, 6), t(2, dtype=I64), t(3, 6), None)),
    "see_loss_fused-threshold-nan": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                    num_selected=None, threshold=float("nan"))),
    "see_loss_fused-float16": ("see_loss_fused", lambda: _see(t(5, 6).half(), t(5, dtype=I64), t(3, 6).half(), None)),
    "see_loss_fused-not-contiguous": ("see_loss_fused", lambda: _see(t(6, 5).t(), t(5, dtype=I64), t(3, 6), None)),
    "see_loss_fused-products-fp16": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                    products="fp16")),
    "see_loss_fused-products-bf16": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                    products="bf16")),
    "see_loss_fused-products-tf32": ("see_loss_fused", lambda: _see(t(5, 6), t(5, dtype=I64), t(3, 6), None,
                                                                    products="tf32")),
})


def _rows(x, labels, classes, scale=64.0, bias=0.0, kind=2, margin=0.5, offset=0, chunk_bytes=None):
    return x, labels, classes, scale, bias, kind, margin, offset, chunk_bytes


def _grads(x, labels, classes, lse=None, weight=None, scale=64.0, kind=2, offset=0, chunk_bytes=None):
    N = x.shape[0]
    lse = t(N) if lse is None else lse
    weight = t(N) if weight is None else weight
    return x, labels, classes, lse, weight, scale, 0.0, kind, 0.5, offset, chunk_bytes


CASES.update({
    "softmax_family_rows-B0": ("softmax_family_rows", lambda: _rows(t(0, 4), t(0, dtype=I64), t(3, 4))),
    "softmax_family_rows-C0": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(0, 4))),
    "softmax_family_rows-D0": ("softmax_family_rows", lambda: _rows(t(5, 0), t(5, dtype=I64), t(3, 0))),
    "softmax_family_rows-labels-out": ("softmax_family_rows", lambda: _rows(t(5, 4), torch.tensor([0, 2**40, -7, 3, 1]),
                                                                            t(3, 4))),
    "softmax_family_rows-labels-short": ("softmax_family_rows", lambda: _rows(t(5, 4), t(2, dtype=I64), t(3, 4))),
    "softmax_family_rows-D-mismatch": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(3, 5))),
    "softmax_family_rows-dtypes": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(3, 4, dtype=F32))),
    "softmax_family_rows-float16": ("softmax_family_rows", lambda: _rows(t(5, 4).half(), t(5, dtype=I64),
                                                                         t(3, 4).half())),
    "softmax_family_rows-not-contiguous": ("softmax_family_rows", lambda: _rows(t(4, 5).t(), t(5, dtype=I64),
                                                                                t(3, 4))),
    "softmax_family_rows-classes-strided": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64),
                                                                                 t(4, 3).t())),
    "softmax_family_rows-offset-negative": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                                 offset=-2)),
    "softmax_family_rows-chunk-negative": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                                chunk_bytes=-1)),
    "softmax_family_rows-scale-inf": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                           scale=float("inf"))),
    "softmax_family_rows-kind-unknown": ("softmax_family_rows", lambda: _rows(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                              kind=99)),
    "softmax_family_grad-B0": ("softmax_family_grad", lambda: _grads(t(0, 4), t(0, dtype=I64), t(3, 4))),
    "softmax_family_grad-C0": ("softmax_family_grad", lambda: _grads(t(5, 4), t(5, dtype=I64), t(0, 4))),
    "softmax_family_grad-lse-short": ("softmax_family_grad", lambda: _grads(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                            lse=t(2))),
    "softmax_family_grad-lse-float32": ("softmax_family_grad", lambda: _grads(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                              lse=t(5, dtype=F32))),
    "softmax_family_grad-weight-2d": ("softmax_family_grad", lambda: _grads(t(5, 4), t(5, dtype=I64), t(3, 4),
                                                                            weight=t(5, 1))),
    "softmax_family_grad-labels-out": ("softmax_family_grad", lambda: _grads(
        t(5, 4), torch.tensor([0, 2**40, -7, 3, 1]), t(3, 4))),
    "softmax_family_grad-classes-strided": ("softmax_family_grad", lambda: _grads(t(5, 4), t(5, dtype=I64),
                                                                                  t(4, 3).t())),
})

def run_cases(names, start):
    """The child: each call announced on stdout before it starts, and its outcome after."""
    for name in names[start:]:
        op, build = CASES[name]
        print(f"START {name}", flush=True)
        try:
            getattr(torch.ops.see_cuda, op).default(*build())
            outcome = "returned"
        except Exception as error:  # noqa: BLE001 (any exception is an allowed outcome)
            outcome = type(error).__name__
        print(f"END {name} {outcome}", flush=True)


@functools.lru_cache(maxsize=None)
def outcomes() -> dict:
    """name -> "returned", an exception's type name, or "signal N" (the child died in that call)."""
    names, results, start = list(CASES), {}, 0
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(see_cuda.__file__))))
    while start < len(names):
        child = subprocess.run([sys.executable, os.path.abspath(__file__), str(start)], capture_output=True, text=True,
                               env=env, timeout=600)
        current = None
        for line in child.stdout.splitlines():
            kind, name, *rest = line.split(" ", 2)
            if kind == "START":
                current = name
            elif kind == "END":
                results[name], current = rest[0], None
        if child.returncode == 0:
            break
        if current is None:  # died outside any call: report it on the next one
            current = names[len(results)]
        results[current] = f"signal {-child.returncode}" if child.returncode < 0 else f"exit {child.returncode}"
        start = names.index(current) + 1
    return results


@pytest.mark.skipif(not HAVE_CPU_KERNELS, reason="the raw ops need see_cuda._C")
@pytest.mark.parametrize("name", list(CASES))
def test_raw_op_call_raises_or_returns(name):
    outcome = outcomes()[name]
    assert not outcome.startswith(("signal", "exit")), f"{CASES[name][0]} {name}: the process died ({outcome})"


if __name__ == "__main__":
    run_cases(list(CASES), int(sys.argv[1]))
