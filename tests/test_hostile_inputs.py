"""Hostile input through every public function and implementation: a clear error or the reference's answer.

Each example draws the arguments of one public function from pools of what
breaks numerical code: NaN, ±inf, all-zero rows, rows equal to their proxies,
scales of 1e±30, huge and tiny α and margins, empty batches, one class, labels
at the edges and outside, every integer label dtype, every float dtype,
non-contiguous and expanded tensors, meta tensors. The reference (the
specification) runs on them first. Then the implementation under test must
either raise a ValueError/TypeError naming an argument where the reference
does, or return what the reference returns: NaN where it is NaN, ±inf where it
is ±inf, and elsewhere within the documented rounding bound (below) of it.
Never a silent difference.

The default suite runs a few examples per function (seconds);
SEE_CUDA_HOSTILE_EXAMPLES=N runs N.
"""
from __future__ import annotations

import inspect
import math
import os
import re

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import see_cuda
from see_cuda import reference, validation

from conftest import HAVE_CPU_KERNELS, requires_cuda_kernels

EXAMPLES = int(os.environ.get("SEE_CUDA_HOSTILE_EXAMPLES", "12"))
HOSTILE = settings(max_examples=EXAMPLES, deadline=None, derandomize="SEE_CUDA_HOSTILE_EXAMPLES" not in os.environ,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# The implementations held to the reference; "reference" alone checks that its own errors are clear.
CANDIDATES = [
    pytest.param("reference", "cpu", id="reference"),
    pytest.param("fused", "cpu", id="fused-cpu",
                 marks=pytest.mark.skipif(not HAVE_CPU_KERNELS, reason="see_cuda._C is not built")),
    pytest.param("fused", "cuda", id="fused-cuda", marks=requires_cuda_kernels),
]

UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}
FLOAT_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
INTEGER_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8]
# Pools with the ordinary value repeated, so that about half the calls are accepted and compared.
SCALES = [1.0] * 5 + [1e-3, 1e3, 1e-30, 1e30, 0.0]
SPECIALS = ["none"] * 7 + ["nan", "inf", "-inf", "zero-row", "row-of-proxy", "row-of-proxy"]
LAYOUTS = ["contiguous", "contiguous", "transposed", "strided", "expanded"]
ALPHAS = [32.0] * 4 + [1e-6, 400.0, 1e4, 2.0**30, 1e11, 1e20, 1e300]
MARGINS = [0.1] * 4 + [0.0, -0.5, 1e-300, 10.0, -1e10]
LAMBDAS = [0.2, 0.2, 0.0, 1.0, 1e6]
LABEL_PATTERNS = ["uniform"] * 5 + ["one-class", "edges", "negative", "past-the-end", "huge"]


# ---------------------------------------------------------------- drawing hostile tensors
@st.composite
def hostile_rows(draw, rows, cols, dtype, like=None):
    """A rows x cols tensor in `dtype`: a scale, a special value, a layout (and rows equal to `like`'s)."""
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(rows, cols, generator=g, dtype=torch.float64) * draw(st.sampled_from(SCALES))
    special = draw(st.sampled_from(SPECIALS))
    if rows and cols:
        i, j = draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))
        if special in ("nan", "inf", "-inf"):
            x[i, j] = float(special)
        elif special == "zero-row":
            x[i] = 0.0
        elif special == "row-of-proxy" and like is not None and like.shape[0]:
            x[i] = like[draw(st.integers(0, like.shape[0] - 1))].double() * draw(st.sampled_from([1.0, 3.0, -1.0]))
    return with_layout(x.to(dtype), draw(st.sampled_from(LAYOUTS)))


def with_layout(x, layout):
    """x (2-D) as a tensor of the same values and another memory layout."""
    if layout == "transposed":
        return x.t().contiguous().t()
    if layout == "strided":
        return torch.stack([x, torch.zeros_like(x)], dim=-1)[..., 0]
    if layout == "expanded" and x.shape[0]:
        return x[:1].expand_as(x)
    return x


@st.composite
def hostile_labels(draw, size, num_classes):
    pattern = draw(st.sampled_from(LABEL_PATTERNS))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    labels = torch.randint(0, max(num_classes, 1), (size,), generator=g)
    if pattern == "one-class":
        labels.fill_(num_classes - 1)
    elif pattern == "edges":
        labels = torch.where(labels % 2 == 0, 0, num_classes - 1)
    elif size and pattern == "negative":
        labels[0] = -1
    elif size and pattern == "past-the-end":
        labels[-1] = num_classes
    elif size and pattern == "huge":
        labels[0] = 2**40
    dtype = draw(st.sampled_from(INTEGER_DTYPES))
    if size and dtype != torch.int64 and (labels.min() < torch.iinfo(dtype).min
                                          or labels.max() > torch.iinfo(dtype).max):
        dtype = torch.int64  # the value would wrap in the narrow dtype: keep the hostile value itself
    return labels.to(dtype)


def dtypes_of_a_loss(draw):
    """(embeddings dtype, proxies dtype): equal, or half-precision embeddings with float32 proxies."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    proxies_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) and draw(st.booleans()) else dtype
    return dtype, proxies_dtype


# ---------------------------------------------------------------- running a call two ways and comparing
def on(device, value):
    """value on `device` (meta tensors stay meta: they hold nothing to copy)."""
    if isinstance(value, torch.Tensor) and value.device.type != "meta":
        return value.to(device)
    return value


def as_float64(value):
    if isinstance(value, torch.Tensor) and value.dtype.is_floating_point:
        return value.detach().double().contiguous()
    return value


def run(fn, args, grad_of=()):
    """("error", exception) or ("value", result, gradients w.r.t. the positions in grad_of)."""
    args = list(args)
    leaves = []
    for i in grad_of:
        if args[i].device.type != "meta":
            args[i] = args[i].detach().clone().requires_grad_()  # a copy keeps its layout
            leaves.append(args[i])
    try:
        out = fn(*args)
        grads = []
        if leaves and out.requires_grad:
            grads = torch.autograd.grad(out, leaves, allow_unused=True)
        see_cuda.wait_for_value_checks()  # a CUDA loss's deferred check (see_cuda/deferred_checks.py)
        return ("value", out, grads)
    except (ValueError, TypeError) as error:
        return ("error", error)


def assert_clear(error, fn):
    """A ValueError/TypeError whose message names an argument of fn."""
    names = getattr(fn, "argument_names", None) or list(inspect.signature(fn).parameters)
    names = [n for n in names if n not in ("implementation", "check_values")]
    message = str(error)
    assert isinstance(error, (ValueError, TypeError)), repr(error)
    assert any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names), (
        f"the error names no argument of {fn.__name__}: {message}")


def assert_same_answer(got, expected, truth, tol_abs, tol_rel, what, scale=None):
    """got and expected (the reference) agree: the same non-finite pattern, and finite values within
    2|expected - truth| (the reference's own error in its dtype) plus the rounding bound
    tol_abs + tol_rel·(|truth| + scale), scale (broadcastable) the size of what an entry is formed from."""
    assert got.shape == expected.shape and got.dtype == expected.dtype, what
    assert got.device.type == expected.device.type, what
    if got.device.type == "meta":
        return
    got, expected = got.detach().double().cpu(), expected.detach().double().cpu()
    nan = torch.isnan(expected)
    assert torch.equal(torch.isnan(got), nan), f"{what}: NaN where the reference has none, or none where it has"
    for sign in (1, -1):
        assert torch.equal(got == sign * math.inf, expected == sign * math.inf), f"{what}: infinities differ"
    finite = torch.isfinite(expected)
    if not finite.any():
        return
    truth = truth.detach().double().cpu() if truth is not None else expected
    truth = torch.where(torch.isfinite(truth), truth, expected)
    scale = 0.0 if scale is None else scale
    bound = 2 * (expected - truth).abs() + tol_abs + tol_rel * (truth.abs() + scale)
    excess = ((got - expected).abs() - bound)[finite]
    assert (excess <= 0).all(), f"{what}: differs by {(got - expected).abs()[finite].max():.3g} beyond the bound"


def check_call(fn, args, implementation, device, grad_of=(), tolerance=None):
    """The reference and `implementation` on `device`, held to the contract of this file."""
    expected = run(lambda *a: fn(*a, implementation="reference"), args, grad_of)
    event(f"reference: {expected[0]}" + (f" ({type(expected[1]).__name__})" if expected[0] == "error" else ""))
    if expected[0] == "error":
        assert_clear(expected[1], fn)
    if implementation == "reference":
        return
    got = run(lambda *a: fn(*a, implementation=implementation), [on(device, a) for a in args], grad_of)
    assert got[0] == expected[0], f"the reference gave {expected[0]} {expected[1]!r}, {implementation} gave {got[:2]!r}"
    if got[0] == "error":
        assert_clear(got[1], fn)
        return
    truth = None
    if any(isinstance(a, torch.Tensor) and a.dtype.is_floating_point and a.dtype != torch.float64
           and a.device.type != "meta" for a in args):
        truth = run(lambda *a: fn(*a, implementation="reference"), [as_float64(a) for a in args], grad_of)
        assert truth[0] == "value", f"float64 rejects what the input's dtype accepts: {truth[1]!r}"
    if got[1].device.type == "meta":
        assert got[1].shape == expected[1].shape and got[1].dtype == expected[1].dtype
        return
    bounds = tolerance(args) if tolerance else ((0.0, 0.0), None)
    if bounds is None:  # a rounding-defined answer (see frame_is_degenerate): the outcome alone is compared
        event("a degenerate frame: no claim on the values")
        assert got[1].shape == expected[1].shape and got[1].dtype == expected[1].dtype
        return
    value_tol, grad_tol = bounds
    assert_same_answer(got[1], expected[1], truth[1] if truth else None, *value_tol, "value")
    if grad_tol is not None and expected[2]:
        truth_grads = truth[2] if truth else [None] * len(expected[2])
        rel, gradient_scale = grad_tol
        for index, mine, theirs, exact in zip(grad_of, got[2], expected[2], truth_grads):
            assert (mine is None) == (theirs is None)
            if mine is not None:
                assert_same_answer(mine, theirs, exact, 0.0, rel, "gradient", scale=gradient_scale(args[index]))


# ---------------------------------------------------------------- the rounding bounds
def kernel_unit_roundoff(dtype):
    return UNIT_ROUNDOFF[torch.float64 if dtype == torch.float64 else torch.float32]


def frame_kappa(z, w, draws):
    """The largest condition number of [ŵ, ẑ, draws] over every pairing of a source with a block of draws
    (which block a selected row gets depends on the selection): the expansion's rounding amplifier."""
    if draws is None or draws.shape[1] == 0 or z.shape[0] == 0:
        return 1.0
    z, w, draws = (reference.l2_normalize(v.detach().double().cpu()) for v in (z, w, draws))
    columns = torch.cat([w.unsqueeze(1).unsqueeze(1).expand(-1, draws.shape[0], -1, -1),
                         z.unsqueeze(1).unsqueeze(1).expand(-1, draws.shape[0], -1, -1),
                         draws.unsqueeze(0).expand(z.shape[0], -1, -1, -1)], dim=2).flatten(0, 1)
    singular = torch.linalg.svdvals(columns.transpose(1, 2))
    kappa = (singular[:, 0] / singular[:, -1]).max().item()
    return kappa if math.isfinite(kappa) else math.inf


def frame_is_degenerate(kappa, dtype):
    """A draw near the span of the frame before it (κ·u >= 1/16) leaves the frame, and the points, defined
    by rounding: a draw in the span to rounding makes them NaN (docs/method.md §3.2), and one just outside
    may count as in it in one implementation and not in another (test_expansion.py tests both sides)."""
    return kappa * kernel_unit_roundoff(dtype) >= 1 / 16


def loss_tolerance(alpha, lam, D, dtype, kappa=None, n=0):
    """(value bound, gradient bound) of a Proxy-Anchor loss computed from inputs in `dtype`.

    A cosine errs by at most (D + 4)u in the kernel dtype, a synthetic point's
    cosine by (n + 1)κ times more (test_proxy_anchor.py, large_alpha_tolerance).
    The loss is 2α-Lipschitz in the cosines per term: 2(1 + λ)α·Δs, plus 16u of
    its size for the float64 sums and the rounding to the result dtype.

    A gradient entry is formed from softmax weights times α: rounding moves
    their exponents by 2αΔs, so they change by a factor e^{2αΔs}; the bound is
    linear (2·2αΔs, plus the products' 16(D + 4)u) while 2αΔs <= 0.05, and
    beyond that the gradients are rounding-defined (no claim: None). It is
    relative to the size of what a row's gradient is formed from: the weights
    of a row (or a proxy's column) sum to at most 2(1 + λ)α, and the
    normalisation's backward divides by sqrt(|row|² + ε), so that entries which
    cancel to nearly 0 (a row along its own gradient) are held to that size.
    """
    u = kernel_unit_roundoff(dtype)
    delta_s = (D + 4) * u * (1 + (n + 1) * (kappa if kappa is not None else 0.0))
    value = ((2 * (1 + lam) * alpha * delta_s, 16 * u + UNIT_ROUNDOFF[dtype]))
    exponent = 2 * alpha * delta_s
    if exponent > 0.05:
        return value, None

    def gradient_scale(rows):
        rows = rows.detach().double().cpu()
        return 2 * (1 + lam) * alpha / torch.sqrt((rows * rows).sum(-1, keepdim=True) + reference.NORM_EPS)

    return value, (2 * exponent + 16 * (D + 4) * u + UNIT_ROUNDOFF[dtype], gradient_scale)


# ---------------------------------------------------------------- one test per public function
@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(data=st.data())
def test_proxy_anchor_loss(implementation, device, data):
    dtype, proxies_dtype = dtypes_of_a_loss(data.draw)
    B, C, D = data.draw(st.sampled_from([0, 1, 3, 6])), data.draw(st.sampled_from([1, 2, 4])), data.draw(
        st.sampled_from([1, 2, 5]))
    proxies = data.draw(hostile_rows(C, D, proxies_dtype))
    x = data.draw(hostile_rows(B, D, dtype, like=proxies))
    y = data.draw(hostile_labels(B, C))
    alpha, margin = data.draw(st.sampled_from(ALPHAS)), data.draw(st.sampled_from(MARGINS))
    args = [x, y, proxies, alpha, margin]
    if data.draw(st.sampled_from([False, False, False, True])):
        args = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]
    check_call(see_cuda.proxy_anchor_loss, args, implementation, device, grad_of=(0, 2),
               tolerance=lambda a: loss_tolerance(alpha, 0.0, D, dtype))


@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(data=st.data())
def test_proxy_anchor_loss_with_synthetic(implementation, device, data):
    dtype, proxies_dtype = dtypes_of_a_loss(data.draw)
    B, M, C, D = (data.draw(st.sampled_from(v)) for v in ([1, 3], [0, 1, 4], [1, 3], [2, 5]))
    proxies = data.draw(hostile_rows(C, D, proxies_dtype))
    x, synthetic = data.draw(hostile_rows(B, D, dtype, like=proxies)), data.draw(hostile_rows(M, D, dtype))
    y, synthetic_labels = data.draw(hostile_labels(B, C)), data.draw(hostile_labels(M, C))
    lam, alpha = data.draw(st.sampled_from(LAMBDAS)), data.draw(st.sampled_from(ALPHAS))
    margin = data.draw(st.sampled_from(MARGINS))
    args = [x, y, proxies, synthetic, synthetic_labels, lam, alpha, margin]
    check_call(see_cuda.proxy_anchor_loss_with_synthetic, args, implementation, device, grad_of=(0, 2, 3),
               tolerance=lambda a: loss_tolerance(alpha, lam, D, dtype))


@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(data=st.data())
def test_fused_see_loss(implementation, device, data):
    dtype, proxies_dtype = dtypes_of_a_loss(data.draw)
    n = data.draw(st.sampled_from([1, 2, 3]))
    B, C, D = data.draw(st.sampled_from([1, 4, 6])), data.draw(st.sampled_from([1, 3])), data.draw(
        st.sampled_from([n, n + 1, 6]))
    proxies = data.draw(hostile_rows(C, D, proxies_dtype))
    x, y = data.draw(hostile_rows(B, D, dtype, like=proxies)), data.draw(hostile_labels(B, C))
    noise = data.draw(hostile_rows(B * (n - 1), D, dtype)).reshape(B, n - 1, D)
    mode = data.draw(st.sampled_from(["fraction", "fraction", "threshold", "none"]))
    ratio, threshold = data.draw(st.sampled_from([0.0, 0.4, 1.0])), data.draw(st.sampled_from([-1.0, 0.5, 2.0]))
    lam, alpha = data.draw(st.sampled_from(LAMBDAS)), data.draw(st.sampled_from(ALPHAS))
    margin, detach = data.draw(st.sampled_from(MARGINS)), data.draw(st.sampled_from([True, True, False]))
    meta = data.draw(st.sampled_from([False, False, False, True]))

    def loss(embeddings, labels, proxies_, noise_, implementation):
        return see_cuda.fused_see_loss(embeddings, labels, proxies_, n_expansion=n, lam=lam, mode=mode, ratio=ratio,
                                       threshold=threshold, alpha=alpha, margin=margin, detach_synthetic=detach,
                                       noise=noise_, implementation=implementation)

    def tolerance(a):
        kappa = frame_kappa(x, proxies[y.long().clamp(0, C - 1)], noise) if mode != "none" else 0.0
        if frame_is_degenerate(kappa, dtype):
            return None
        value, grads = loss_tolerance(alpha, lam, D, dtype, kappa, n)
        # Attached synthetic points carry the expansion's gradient, rounding-defined near the axis
        # (test_expansion.py): only the detached loss's gradients are compared.
        return value, grads if detach else None

    args = [x, y, proxies, noise]
    if meta:
        args = [a.to("meta") for a in args]
    loss.__signature__ = inspect.signature(see_cuda.fused_see_loss)
    loss.__name__ = "fused_see_loss"
    check_call(loss, args, implementation, device, grad_of=(0, 2), tolerance=tolerance)


@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(data=st.data())
def test_see_proxy_anchor_loss_module(implementation, device, data):
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    n, C = data.draw(st.sampled_from([1, 3])), data.draw(st.sampled_from([1, 3]))
    B, D = data.draw(st.sampled_from([1, 5])), data.draw(st.sampled_from([n + 1, 6]))
    proxies = data.draw(hostile_rows(C, D, torch.float32))
    x, y = data.draw(hostile_rows(B, D, dtype, like=proxies)), data.draw(hostile_labels(B, C))
    mode, epoch = data.draw(st.sampled_from(["fraction", "threshold", "none"])), data.draw(st.sampled_from([0, 5, 40]))
    alpha, seed = data.draw(st.sampled_from(ALPHAS[:6])), data.draw(st.integers(0, 2**31 - 1))

    def module_loss(embeddings, labels, proxies_, implementation):
        module = see_cuda.SEEProxyAnchorLoss(C, D, n_expansion=n, mode=mode, alpha=alpha, num_epochs=40,
                                             generator=torch.Generator(device=embeddings.device).manual_seed(seed),
                                             implementation=implementation)
        # Its proxies in the embeddings' dtype, float32 under half precision (mixed precision).
        module.to(embeddings.device, torch.float64 if embeddings.dtype == torch.float64 else torch.float32)
        with torch.no_grad():
            module.proxies.copy_(proxies_)
        module.step_epoch(epoch)
        return module(embeddings, labels)

    def tolerance(a):
        draws = reference.expansion_noise(B, n, D, torch.promote_types(dtype, torch.float32), "cpu",
                                          torch.Generator().manual_seed(seed))
        kappa = frame_kappa(x, proxies[y.long().clamp(0, C - 1)], draws) if mode != "none" else 0.0
        if frame_is_degenerate(kappa, dtype):
            return None
        value, _ = loss_tolerance(alpha, see_cuda.SEEOptions().lam, D, dtype, kappa, n)
        return value, None

    # The module's arguments, its forward's, and its parameter `proxies`.
    module_loss.argument_names = ["embeddings", "labels", "proxies", *inspect.signature(see_cuda.SEEProxyAnchorLoss)
                                  .parameters]
    check_call(module_loss, [x, y, proxies], implementation, device, tolerance=tolerance)


@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(data=st.data())
def test_spherical_expansion(implementation, device, data):
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    n = data.draw(st.sampled_from([1, 2, 4]))
    k, D = data.draw(st.sampled_from([0, 1, 3])), data.draw(st.sampled_from([n, n + 1, 7]))
    w = data.draw(hostile_rows(k, D, dtype))
    z = data.draw(hostile_rows(k, D, dtype, like=w))
    noise = data.draw(hostile_rows(k * (n - 1), D, dtype)).reshape(k, n - 1, D)
    args = [z, w, n, noise]
    if data.draw(st.sampled_from([False, False, False, True])):
        args = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]

    def tolerance(a):
        # Unit points: BASE_RTOL of test_expansion.py (float32 2e-5, float64 1e-10) plus κu, absolute.
        u, kappa = kernel_unit_roundoff(dtype), frame_kappa(z, w, noise)
        if frame_is_degenerate(kappa, dtype):
            return None
        base = 1e-10 if dtype == torch.float64 else 2e-5
        return (base + kappa * u + UNIT_ROUNDOFF[dtype], 0.0), None

    check_call(see_cuda.spherical_expansion, args, implementation, device, tolerance=tolerance)


@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(data=st.data())
def test_slerp(implementation, device, data):
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    R, D = data.draw(st.sampled_from([0, 1, 4])), data.draw(st.sampled_from([1, 2, 3, 6]))
    a = data.draw(hostile_rows(R, D, dtype))
    b = data.draw(hostile_rows(R, D, dtype, like=a))
    t = data.draw(st.sampled_from(["scalar", "tensor", "bad"]))
    if t == "scalar":
        t = data.draw(st.sampled_from([0.0, 0.5, 1.0, -0.3, 1e30, float("nan")]))
    else:
        t = data.draw(hostile_rows(1, R if t == "tensor" else R + 1, dtype))[0]
    args = [a, b, t]
    if data.draw(st.sampled_from([False, False, False, True])):
        args = [v.to("meta") if isinstance(v, torch.Tensor) else v for v in args]

    def tolerance(args_):
        # Unit vectors from an angle: |t|·θ carries |t|·(D + 4)u; at the antipode and at θ = 0 the
        # direction is a convention both implementations share.
        u = kernel_unit_roundoff(dtype)
        t_scale = max(1.0, float(torch.as_tensor(t).abs().max()) if torch.as_tensor(t).numel() else 1.0)
        return (16 * (D + 4) * u * t_scale + UNIT_ROUNDOFF[dtype], 0.0), None

    check_call(see_cuda.slerp, args, implementation, device, tolerance=tolerance)


@pytest.mark.parametrize("implementation, device", CANDIDATES)
@HOSTILE
@given(num_centers=st.sampled_from([0, 1, 2, 5, 17, -1, 2.0, True]), dim=st.sampled_from([0, 1, 4, 16, 40]),
       radius=st.sampled_from([1.0, 0.0, 2.5, 1e300, -1.0, float("nan"), float("inf")]),
       meta=st.sampled_from([False, False, True]))
def test_mmd_centers(implementation, device, num_centers, dim, radius, meta):
    target = "meta" if meta else device

    def centers(num_centers_, dim_, radius_, implementation):
        return see_cuda.mmd_centers(num_centers_, dim_, radius_, device=target, implementation=implementation)

    centers.__signature__ = inspect.signature(see_cuda.mmd_centers)
    centers.__name__ = "mmd_centers"
    check_call(centers, [num_centers, dim, radius], implementation, device,
               tolerance=lambda a: ((1e-12 * abs(radius) if math.isfinite(radius) else 0.0, 1e-12), None))


@HOSTILE
@given(data=st.data())
def test_select_for_expansion(data):
    """One implementation: a clear error, or indices into the scores with the documented count and order."""
    B = data.draw(st.sampled_from([0, 1, 5]))
    scores = data.draw(hostile_rows(1, B, data.draw(st.sampled_from(FLOAT_DTYPES))))[0]
    if data.draw(st.booleans()):
        scores = scores.reshape(1, -1)
    mode = data.draw(st.sampled_from(["fraction", "threshold", "none", "top-k", None]))
    ratio = data.draw(st.sampled_from([0.0, 0.4, 1.0, -0.5, 1.5, float("nan"), "0.4"]))
    threshold = data.draw(st.sampled_from([-1.0, 0.5, 2.0, float("nan"), float("inf")]))
    try:
        selected = see_cuda.select_for_expansion(scores, mode, ratio, threshold)
    except (ValueError, TypeError) as error:
        assert_clear(error, see_cuda.select_for_expansion)
        return
    assert selected.dtype == torch.int64 and selected.dim() == 1
    assert ((selected >= 0) & (selected < B)).all() and selected.unique().numel() == selected.numel()
    if mode == "fraction":
        assert selected.numel() == round(B * ratio)
        assert (scores[selected[1:]] <= scores[selected[:-1]]).all()
    elif mode == "threshold":
        assert torch.equal(selected, torch.nonzero(scores >= threshold).flatten())
    else:
        assert selected.numel() == 0


@HOSTILE
@given(epoch=st.sampled_from([0, 3, 40, 400, -1, 2.5, float("nan"), float("inf"), "3"]),
       num_epochs=st.sampled_from([0, 1, 40, 300, -5, float("inf")]),
       low=st.sampled_from([0.0, 0.04, 0.5, -0.1, 1.5, float("nan")]),
       high=st.sampled_from([0.4, 0.9, 1.0, 2.0, float("-inf")]))
def test_schedules(epoch, num_epochs, low, high):
    """A clear error, or a value between the schedule's bounds."""
    for schedule, call in ((see_cuda.fraction_schedule, lambda: see_cuda.fraction_schedule(epoch, num_epochs, low,
                                                                                            high)),
                           (see_cuda.threshold_schedule, lambda: see_cuda.threshold_schedule(epoch, num_epochs, low,
                                                                                             high))):
        try:
            value = call()
        except (ValueError, TypeError) as error:
            assert_clear(error, schedule)
            continue
        assert math.isfinite(value)
        assert min(low, high) - 1e-12 <= value <= max(low, high) + 1e-12 or (
            schedule is see_cuda.threshold_schedule and value == 0.0)  # the floor, lower_bound = 0


def test_the_budget_is_read_from_the_environment():
    """The long run is this file with SEE_CUDA_HOSTILE_EXAMPLES=N (N examples per function)."""
    assert HOSTILE.max_examples == EXAMPLES >= 1
    # ALPHAS holds values on both sides of the float32 bound, and beyond the float16 one.
    assert 1e20 < validation.max_alpha(torch.float32, 0.1) < 1e300 and validation.max_alpha(torch.float16, 0.1) < 1e11
