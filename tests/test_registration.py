"""The ops as PyTorch operators: opcheck of every op over the flags it accepts, torch.compile, the build report."""
import itertools

import pytest
import torch

import see_cuda

from comparisons import draw
from conftest import DEVICES, requires_cpu_kernels

OPS = torch.ops.see_cuda if see_cuda.backends()["cpu"] or see_cuda.backends()["cuda"] else None
OPCHECK_TESTS = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")


def grad_leaf(t, wanted):
    return t.clone().requires_grad_() if wanted else t.clone()


def op_samples(device):
    """(name, op, args) for every op and every combination of its flags (and of which inputs need a gradient)."""
    z, w, noise = draw(4, 10, seed=1), draw(4, 10, seed=2), draw(4, 3, 10, seed=3)
    x, proxies = draw(8, 10, seed=4), draw(5, 10, seed=5)
    y = torch.tensor([0, 1, 1, 2, 2, 2, 0, 4])
    synthetic, synthetic_labels = draw(6, 10, seed=6), torch.tensor([0, 0, 1, 1, 2, 2])
    see_noise = draw(8, 2, 10, seed=7)
    t = torch.rand(4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    z, w, noise, x, proxies, y, synthetic, synthetic_labels, see_noise, t = (
        v.to(device) for v in (z, w, noise, x, proxies, y, synthetic, synthetic_labels, see_noise, t))
    seed = torch.tensor(7, device=device)
    samples = []
    for grad in (True, False):
        samples.append((f"expansion-grad{grad}", OPS.expansion.default, (grad_leaf(z, grad), w, noise)))
        samples.append((f"slerp-grad{grad}", OPS.slerp.default,
                        (grad_leaf(z, grad), grad_leaf(w, grad), grad_leaf(t, grad))))
    for compute_grad, synthetic_grad in itertools.product((True, False), repeat=2):
        # Without compute_grad the op has no gradient to give: its inputs must not ask for one.
        samples.append((f"proxy_anchor_fused-compute{compute_grad}-synthetic{synthetic_grad}",
                        OPS.proxy_anchor_fused.default,
                        (grad_leaf(x, compute_grad), y, grad_leaf(proxies, compute_grad),
                         grad_leaf(synthetic, compute_grad and synthetic_grad), synthetic_labels, 32.0, 0.1, 0.2,
                         compute_grad, synthetic_grad)))
    # A shard of the classes (labels of other classes and beyond the shard), in chunks of one class.
    samples.append(("proxy_anchor_fused-shard-chunks", OPS.proxy_anchor_fused.default,
                    (grad_leaf(x, True), y, grad_leaf(proxies[1:4], True), grad_leaf(synthetic, True),
                     synthetic_labels, 32.0, 0.1, 0.2, True, True, 1, 5, 1)))
    for compute_grad, given_noise, num_selected in itertools.product((True, False), (True, False), (4, None)):
        samples.append((f"see_loss_fused-compute{compute_grad}-noise{given_noise}-select{num_selected}",
                        OPS.see_loss_fused.default,
                        (grad_leaf(x, compute_grad), y, grad_leaf(proxies, compute_grad),
                         see_noise if given_noise else None, seed, 3, num_selected, 0.1, 0.2, 32.0, 0.1,
                         compute_grad)))
    samples.append(("see_loss_fused-chunks", OPS.see_loss_fused.default,
                    (grad_leaf(x, True), y, grad_leaf(proxies, True), see_noise, seed, 3, 4, 0.1, 0.2, 32.0, 0.1,
                     True, 1)))
    samples.append(("mmd_centers_", OPS.mmd_centers_.default,
                    (torch.empty(5, 6, dtype=torch.float64, device=device), 1.0)))
    for dtype in (torch.float32, torch.float64):
        samples.append((f"philox_normal_-{dtype}", OPS.philox_normal_.default,
                        (torch.empty(3, 5, dtype=dtype, device=device), seed)))
    return samples


SAMPLE_NAMES = [name for name, _, _ in op_samples("cpu")] if OPS is not None else []


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_opcheck(device, name):
    if device == "cuda" and name.startswith("see_loss_fused") and not see_cuda.backends()["cuda"]:
        pytest.skip("no CUDA kernels")
    samples = {sample_name: (op, args) for sample_name, op, args in op_samples(device)}
    op, args = samples[name]
    if not torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), device.upper()):
        pytest.skip(f"{op.name()} has no {device} kernel (the composition of the other ops serves there)")
    tests = OPCHECK_TESTS
    if not name.startswith(("mmd_centers_", "philox_normal_")):
        tests += ("test_autograd_registration",)
    torch.library.opcheck(op, args, test_utils=tests)


@pytest.mark.parametrize("device", DEVICES)
def test_fake_proxy_anchor_outputs_have_the_kernels_shapes(device):
    """Without compute_grad every gradient output is empty, whatever synthetic_grad says."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x, proxies, synthetic = (draw(*shape, seed=seed).to(device) for shape, seed in (((8, 10), 4), ((5, 10), 5),
                                                                                      ((6, 10), 6)))
    y, synthetic_labels = torch.zeros(8, dtype=torch.int64, device=device), torch.ones(6, dtype=torch.int64,
                                                                                       device=device)
    for compute_grad, synthetic_grad in itertools.product((True, False), repeat=2):
        args = (x, y, proxies, synthetic, synthetic_labels, 32.0, 0.1, 0.2, compute_grad, synthetic_grad)
        real = OPS.proxy_anchor_fused.default(*args)
        with FakeTensorMode() as mode:
            fake = OPS.proxy_anchor_fused.default(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
                                                    for a in args))
        assert [tuple(t.shape) for t in fake] == [tuple(t.shape) for t in real]
        expected_synthetic = (6, 10) if compute_grad and synthetic_grad else (0,)
        assert tuple(real[3].shape) == expected_synthetic
        if not compute_grad:
            assert all(tuple(t.shape) == (0,) for t in real[1:])


@requires_cpu_kernels
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


def test_backends_report_what_the_dispatcher_has_and_fused_runs_exactly_there():
    """Not skipped without kernels: the report must then say False, and implementation="fused" refuse."""
    from see_cuda import _extension

    report = see_cuda.backends()
    assert set(report) == {"cpu", "cuda", "cuda_device"}
    for device_type, key in (("cpu", "CPU"), ("cuda", "CUDA")):
        registered = _extension.HAVE_EXTENSION and torch._C._dispatch_has_kernel_for_dispatch_key(
            "see_cuda::proxy_anchor_fused", key)
        assert report[device_type] is registered
    assert report["cuda_device"] is torch.cuda.is_available()
    x, y, proxies = draw(4, 3, seed=1), torch.tensor([0, 1, 0, 1]), draw(2, 3, seed=2)
    if report["cpu"]:
        torch.testing.assert_close(see_cuda.proxy_anchor_loss(x, y, proxies, implementation="fused"),
                                   see_cuda.proxy_anchor_loss(x, y, proxies, implementation="reference"))
    else:
        with pytest.raises(RuntimeError, match="built without fused kernels for cpu"):
            see_cuda.proxy_anchor_loss(x, y, proxies, implementation="fused")


# ---------------------------------------------------------------- meta tensors and torch.compile(fullgraph=True)
def loss_inputs(device="cpu", requires_grad=True):
    g = torch.Generator().manual_seed(1)
    x, proxies = torch.randn(32, 24, generator=g), torch.randn(6, 24, generator=g)
    y, noise = torch.randint(0, 6, (32,), generator=g), torch.randn(32, 2, 24, generator=g)
    x, proxies = (t.to(device).requires_grad_(requires_grad) for t in (x, proxies))
    return x, y.to(device), proxies, noise.to(device)


def public_calls(y, noise, implementation):
    """name -> f(x, proxies): a 0-d result of each public function (the sums are the tests' upstream gradients)."""
    return {
        "proxy_anchor_loss": lambda a, p: see_cuda.proxy_anchor_loss(a, y, p, implementation=implementation),
        "proxy_anchor_loss_with_synthetic": lambda a, p: see_cuda.proxy_anchor_loss_with_synthetic(
            a, y, p, a[:8].detach() * 2, y[:8], implementation=implementation),
        "fused_see_loss": lambda a, p: see_cuda.fused_see_loss(a, y, p, n_expansion=3, noise=noise,
                                                               implementation=implementation),
        "fused_see_loss-attached": lambda a, p: see_cuda.fused_see_loss(
            a, y, p, n_expansion=3, noise=noise, detach_synthetic=False, implementation=implementation),
        "fused_see_loss-none": lambda a, p: see_cuda.fused_see_loss(a, y, p, mode="none",
                                                                    implementation=implementation),
        "slerp": lambda a, p: see_cuda.slerp(a[:6], p, 0.3, implementation=implementation).sum(),
        "spherical_expansion": lambda a, p: see_cuda.spherical_expansion(
            a[:6], p.detach(), 3, noise=noise[:6], implementation=implementation).sum(),
    }


CALL_NAMES = list(public_calls(None, None, "auto"))


@requires_cpu_kernels
@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("name", CALL_NAMES)
def test_meta_tensors_run_the_fake_kernels(implementation, name):
    """Meta tensors (shapes without values) failed on both paths: 'could not parse dispatch key: META'."""
    x, y, proxies, noise = loss_inputs("meta")
    out = public_calls(y, noise, implementation)[name](x, proxies)
    assert out.device.type == "meta" and out.shape == () and out.dtype == torch.float32
    grads = torch.autograd.grad(out, (x, proxies), allow_unused=True)
    for grad, leaf_ in zip(grads, (x, proxies)):
        assert grad is None or (grad.device.type == "meta" and grad.shape == leaf_.shape)


@requires_cpu_kernels
@pytest.mark.parametrize("implementation", ["auto", "fused", "reference"])
def test_meta_mmd_centers_and_the_threshold_mode_on_meta(implementation):
    centers = see_cuda.mmd_centers(5, 6, device="meta", implementation=implementation)
    assert centers.device.type == "meta" and centers.shape == (5, 6) and centers.dtype == torch.float64
    x, y, proxies, _ = loss_inputs("meta")
    with pytest.raises(ValueError, match="mode='threshold'"):
        see_cuda.fused_see_loss(x, y, proxies, n_expansion=3, mode="threshold", implementation=implementation)


def compiled(fn, fullgraph=True):
    torch._dynamo.reset()
    return torch.compile(fn, backend="aot_eager", fullgraph=fullgraph)


# Every public function on the fused path; the reference's traces (the expansion's loops unrolled)
# take seconds each, so one of them stands for the reference path.
COMPILE_CASES = [("fused", name) for name in CALL_NAMES] + [("reference", "proxy_anchor_loss")]


@requires_cpu_kernels
@pytest.mark.parametrize("implementation, name", COMPILE_CASES)
def test_fullgraph_compile_matches_eager(implementation, name):
    """fullgraph=True failed for every public function (the dispatcher query, then the value checks)."""
    x, y, proxies, noise = loss_inputs()
    fn = public_calls(y, noise, implementation)[name]
    eager = fn(x, proxies)
    eager_grads = torch.autograd.grad(eager, (x, proxies), allow_unused=True)
    got = compiled(fn)(x, proxies)
    got_grads = torch.autograd.grad(got, (x, proxies), allow_unused=True)
    torch.testing.assert_close(got, eager)
    for mine, theirs in zip(got_grads, eager_grads):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            torch.testing.assert_close(mine, theirs)


@requires_cpu_kernels
@pytest.mark.parametrize("name", ["proxy_anchor_loss", "fused_see_loss", "fused_see_loss-attached"])
def test_fullgraph_compile_of_meta_inputs(name):
    x, y, proxies, noise = loss_inputs("meta")
    out = compiled(public_calls(y, noise, "fused")[name])(x, proxies)
    assert out.device.type == "meta" and out.shape == ()
    assert [g.shape for g in torch.autograd.grad(out, (x, proxies))] == [x.shape, proxies.shape]


@requires_cpu_kernels
def test_compiled_value_checks_stay_in_the_graph():
    """On the CPU values are checked inside the compiled graph: an assert that names the argument."""
    x, y, proxies, noise = loss_inputs(requires_grad=False)
    fn = compiled(lambda a: see_cuda.proxy_anchor_loss(a, y, proxies, implementation="fused"))
    fn(x)
    with pytest.raises(RuntimeError, match="embeddings contains NaN or infinite values"):
        fn(x.clone().index_fill_(0, torch.tensor([3]), float("nan")))
    bad_noise = noise.clone()
    bad_noise[2, 1] = 0.0
    fn = compiled(lambda a, n: see_cuda.fused_see_loss(a, y, proxies, n_expansion=3, noise=n, implementation="fused"))
    fn(x, noise)
    with pytest.raises(RuntimeError, match="noise has a draw that cannot be normalised"):
        fn(x, bad_noise)


@requires_cpu_kernels
@pytest.mark.parametrize("detach_synthetic", [True, False])
def test_a_generator_under_compile_runs_outside_the_graph_and_fullgraph_says_so(detach_synthetic):
    """A torch.Generator cannot be traced: without fullgraph the seed is drawn outside the graph (same
    numbers as eager); with fullgraph=True the error names the argument and the way out."""
    x, y, proxies, _ = loss_inputs()
    generator = torch.Generator()

    def fn(a, p):
        return see_cuda.fused_see_loss(a, y, p, n_expansion=3, generator=generator, detach_synthetic=detach_synthetic,
                                       implementation="fused")

    with pytest.raises(Exception, match="torch.Generator passed as `generator`.*pass noise="):
        compiled(fn)(x, proxies)
    if detach_synthetic:  # one graph break, the same numbers as eager
        generator.manual_seed(5)
        eager = fn(x, proxies)
        generator.manual_seed(5)
        torch.testing.assert_close(compiled(fn, fullgraph=False)(x, proxies), eager)


@requires_cpu_kernels
@pytest.mark.parametrize("op, names", [("proxy_anchor_fused", ("total_classes", "chunk_bytes")),
                                       ("see_loss_fused", ("num_selected", "chunk_bytes"))])
def test_optional_arguments_are_optional_in_the_schema_not_sentinels(op, names):
    schema = getattr(OPS, op).default._schema
    arguments = {argument.name: argument for argument in schema.arguments}
    for name in names:
        assert str(arguments[name].type) == "Optional[int]", (op, name)
    assert all(arguments[name].default_value is None for name in names if arguments[name].has_default_value())


@requires_cpu_kernels
def test_the_one_call_op_selects_by_threshold_without_num_selected_and_refuses_a_negative_count():
    x, proxies, noise = draw(8, 6, seed=1), draw(3, 6, seed=2), draw(8, 2, 6, seed=3)
    y, seed = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), torch.tensor(0)
    by_threshold = OPS.see_loss_fused.default(x, y, proxies, noise, seed, 3, None, -2.0, 0.2, 32.0, 0.1, False)
    assert int(by_threshold[3]) == 8  # every cosine is >= -2
    with pytest.raises(RuntimeError, match="num_selected must be >= 0"):
        OPS.see_loss_fused.default(x, y, proxies, noise, seed, 3, -1, 0.0, 0.2, 32.0, 0.1, False)
