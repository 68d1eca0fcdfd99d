"""The dispatch plan: which path runs, with which primitives, and which checks the kernel makes itself;
the composition exists once and every SEE entry point goes through it or through the one-call op."""
import ast
import pathlib

import pytest
import torch

import see_cuda
from see_cuda import ProxyAnchorSettings, SphericalExpansion, composition, dispatch, fused, ops, reference
from see_cuda.sharded import sharded_see_loss

from conftest import requires_cpu_kernels

CPU = torch.device("cpu")
PACKAGE = pathlib.Path(see_cuda.__file__).parent


def batch(B=12, D=10, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, D, generator=g, dtype=torch.float64), torch.randint(0, C, (B,), generator=g),
            torch.randn(C, D, generator=g, dtype=torch.float64))


# ---------------------------------------------------------------- the plan
def test_the_reference_plan_is_the_reference_primitives_with_the_base_loss():
    plan = dispatch.plan("reference", CPU, ProxyAnchorSettings(), SphericalExpansion())
    assert plan.path == dispatch.REFERENCE and plan.is_reference
    assert plan.primitives == reference.PRIMITIVES._replace(loss=reference.proxy_anchor_primitive)
    assert plan.kernel_checks == frozenset()


@requires_cpu_kernels
@pytest.mark.parametrize("expansion, path", [
    (SphericalExpansion(), dispatch.ONE_CALL),  # detached synthetic points: the one-call op has a CPU kernel
    (SphericalExpansion(detach_synthetic=False), dispatch.COMPOSED),
    (SphericalExpansion(mode="none"), dispatch.COMPOSED),
    (None, dispatch.COMPOSED),  # the base loss alone
])
def test_the_fused_plan_runs_the_whole_loss_in_one_call_where_the_dispatcher_has_its_kernel(expansion, path):
    for implementation in ("auto", "fused"):
        plan = dispatch.plan(implementation, CPU, ProxyAnchorSettings(), expansion)
        assert plan.path == path and not plan.is_reference
        assert plan.kernel_checks == (frozenset({"labels", "rows"}) if path == dispatch.ONE_CALL else frozenset())
        assert plan.primitives.expand is fused.expand and plan.share is fused.proxy_anchor


def test_the_one_call_op_is_asked_of_the_dispatcher_per_device(monkeypatch):
    """A device whose dispatcher has the one-call kernel (CUDA, once it has one) gets the one-call path;
    no device test is written in the plan."""
    monkeypatch.setattr(dispatch, "use_fused", lambda implementation, device, op=None: True)
    asked = []

    def has_kernel(device_type, op):
        asked.append((device_type, op))
        return op == dispatch.WHOLE_LOSS_OP

    monkeypatch.setattr(dispatch, "has_kernel", has_kernel)
    try:
        plan = dispatch.plan("fused", torch.device("cuda"), ProxyAnchorSettings(), SphericalExpansion())
    finally:
        dispatch._fused_primitives.cache_clear()  # its choice of draws was made with the pretend dispatcher
    assert plan.path == dispatch.ONE_CALL and ("cuda", dispatch.WHOLE_LOSS_OP) in asked


def test_fused_without_a_kernel_is_an_error_and_auto_takes_the_reference(monkeypatch):
    monkeypatch.setattr(dispatch, "has_kernel", lambda device_type, op=None: False)
    with pytest.raises(RuntimeError, match="no fused kernel of see_cuda::proxy_anchor_fused for cpu tensors"):
        dispatch.plan("fused", CPU, ProxyAnchorSettings())
    assert dispatch.plan("auto", CPU, ProxyAnchorSettings()).is_reference


def test_a_settings_class_without_primitives_is_refused():
    with pytest.raises(TypeError, match=r"settings must be the settings of a base loss \(ProxyAnchorSettings, "
                                        r"ProxyNCASettings, .*\), got SphericalExpansion"):
        dispatch.plan("reference", CPU, SphericalExpansion())


def test_a_new_base_loss_enters_by_its_settings_class_alone(monkeypatch):
    """A loss whose settings are not alpha and margin plugs into the composition by one BASE_LOSSES entry."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class ScaleSettings:
        scale: float = 2.0

    def scaled(x, y, proxies, synthetic, synthetic_labels, settings, lam, synthetic_grad=False, **shard):
        loss = settings.scale * reference.proxy_anchor_loss(x, y, proxies)
        return loss if synthetic is None else loss + lam * reference.proxy_anchor_loss(synthetic, synthetic_labels,
                                                                                      proxies)

    monkeypatch.setitem(dispatch.BASE_LOSSES, ScaleSettings, composition.BaseLoss(scaled, scaled, scaled))
    x, y, proxies = batch()
    expansion = SphericalExpansion(n_expansion=3, lam=0.5)
    plan = dispatch.plan("reference", CPU, ScaleSettings(), expansion)
    noise = torch.randn(12, 2, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss, _, _ = plan.run(x, y, proxies, expansion, ScaleSettings(), noise=noise)
    pa, _, _ = dispatch.plan("reference", CPU, ProxyAnchorSettings(), expansion).run(
        x, y, proxies, expansion, ProxyAnchorSettings(), noise=noise)
    plain = reference.proxy_anchor_loss(x, y, proxies)
    torch.testing.assert_close(loss, pa + plain, rtol=1e-12, atol=0)


def test_the_plan_leaves_the_checks_the_kernel_makes_to_it():
    plan = dispatch.Plan(dispatch.ONE_CALL, reference.PRIMITIVES, reference.proxy_anchor_primitive,
                         kernel_checks=frozenset({"labels", "rows"}))
    groups = dict(rows={"x": 1}, labels={"y": 2}, noise={"n": 3})
    assert plan.unchecked_values(torch.float32, False, **groups) == {"noise": {"n": 3}}
    # Rows in half precision are checked in their dtype, not the kernel's.
    assert plan.unchecked_values(torch.float16, False, **groups) == {"rows": {"x": 1}, "noise": {"n": 3}}


def test_the_plan_counts_the_kernels_flags_as_checks_only_where_they_are_read():
    plan = dispatch.Plan(dispatch.ONE_CALL, reference.PRIMITIVES, reference.proxy_anchor_primitive,
                         kernel_flags=frozenset({"labels", "rows"}))
    groups = dict(rows={"x": 1}, labels={"y": 2}, noise={"n": 3})
    assert plan.unchecked_values(torch.float32, True, **groups) == {"noise": {"n": 3}}
    assert plan.unchecked_values(torch.float32, False, **groups) == groups  # not deferred: read here


def test_a_cuda_one_call_plan_reads_the_kernels_flags():
    """Asked of the dispatcher's CUDA kernel: where this install has one, the plan says the kernels flag labels
    and rows; the CPU's op raises instead."""
    expansion = SphericalExpansion(n_expansion=3)
    cpu_plan = dispatch.BASE_LOSSES[ProxyAnchorSettings]
    assert cpu_plan.one_call_flags == {"cuda": frozenset({"labels", "rows"})}
    assert cpu_plan.one_call_checks == {"cpu": frozenset({"labels", "rows"})}
    if see_cuda.backends()["cpu"]:
        assert dispatch.plan("fused", CPU, ProxyAnchorSettings(), expansion).kernel_flags == frozenset()


# ---------------------------------------------------------------- the composition, once
@pytest.mark.parametrize("call", [
    lambda x, y, p, noise: reference.see_loss(x, y, p, n_expansion=3, noise=noise),
    lambda x, y, p, noise: see_cuda.fused_see_loss(x, y, p, n_expansion=3, noise=noise, implementation="reference"),
    pytest.param(lambda x, y, p, noise: see_cuda.fused_see_loss(x, y, p, n_expansion=3, noise=noise,
                                                                detach_synthetic=False, implementation="fused"),
                 marks=requires_cpu_kernels),
    lambda x, y, p, noise: sharded_see_loss(x, y, p, 4, n_expansion=3, noise=noise),
    lambda x, y, p, noise: see_cuda.SEEProxyAnchorLoss(4, 10, n_expansion=3, implementation="reference")(x.float(), y),
], ids=["reference", "functional-reference", "functional-composed", "sharded", "module"])
def test_every_composed_entry_point_runs_the_one_composition(monkeypatch, call):
    """Replacing composition.see_loss changes every composed path's answer: no other copy of it exists."""
    x, y, proxies = batch()
    noise = torch.randn(12, 2, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    calls = []
    composed = composition.see_loss

    def counted(*args, **kwargs):
        calls.append(args[3])  # the expansion
        return composed(*args, **kwargs)

    monkeypatch.setattr(composition, "see_loss", counted)
    loss = call(x, y, proxies, noise)
    assert len(calls) == 1 and calls[0].n_expansion == 3 and torch.isfinite(loss)


@requires_cpu_kernels
def test_the_one_call_path_runs_the_op_and_not_the_composition(monkeypatch):
    x, y, proxies = batch()
    monkeypatch.setattr(composition, "see_loss", None)  # the one-call path must not reach it
    calls = []
    op = ops.see_loss_fused

    def counted(*args):
        calls.append(args[6])  # num_selected
        return op(*args)

    monkeypatch.setattr(ops, "see_loss_fused", counted)
    see_cuda.fused_see_loss(x, y, proxies, n_expansion=3, ratio=0.5, implementation="fused")
    assert calls == [6]


def _python_files():
    return [path for path in PACKAGE.rglob("*.py") if "train" not in path.parts]


def test_no_module_but_dispatch_decides_which_implementation_runs():
    """The questions that decide it (is there a kernel, is this the reference's set of primitives) are asked
    in dispatch.py alone (and answered in _extension.py)."""
    for path in _python_files():
        if path.name in ("dispatch.py", "_extension.py"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                assert name not in ("has_kernel", "use_fused", "_dispatch_has_kernel_for_dispatch_key"), (
                    f"{path.name}:{node.lineno} calls {name}")
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
                operands = [node.left, *node.comparators]
                assert not any(isinstance(o, ast.Attribute) and o.attr == "PRIMITIVES" for o in operands), (
                    f"{path.name}:{node.lineno} compares primitives")
