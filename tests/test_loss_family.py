"""The loss family (docs/method.md §1, §7) against pytorch-metric-learning 2.x as the oracle, plain and with SEE."""
from __future__ import annotations

import dataclasses
import math
import sys

import pytest
import torch
from hypothesis import given, settings
from loss_family_cases import LOSSES, SOFTMAX_FAMILY, class_vectors, loss_and_grads, pair, relative_error

import see_cuda
from see_cuda import reference, softmax_reference

from conftest import requires_cpu_kernels
from strategies import loss_problems

B, D, C = 12, 10, 7
IMPLEMENTATIONS = ["reference", pytest.param("fused", marks=requires_cpu_kernels)]


def batch(dtype=torch.float64, seed=0, rows=B, classes=C, dim=D):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, dim, generator=g, dtype=dtype).mul_(3).requires_grad_()
    return x, torch.randint(0, classes, (rows,), generator=g)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_and_gradients_equal_pml_in_float64(name, implementation):
    ours, pml = pair(name, C, D, LOSSES[name][2], implementation=implementation)
    x, y = batch()
    loss, grads = loss_and_grads(ours, x, y)
    expected, expected_grads = loss_and_grads(pml, x, y)
    assert relative_error(loss, expected) <= 1e-9
    for got, want in zip(grads, expected_grads):
        assert relative_error(got, want) <= 1e-9


@pytest.mark.parametrize("name", list(LOSSES))
def test_state_dicts_load_strictly_both_ways(name):
    ours, pml = pair(name, C, D)
    parameter = LOSSES[name][3]
    assert list(ours.state_dict()) == [parameter]
    assert ours.state_dict()[parameter].shape == pml.state_dict()[parameter].shape
    with torch.no_grad():
        getattr(ours, parameter).mul_(2)
    pml.load_state_dict(ours.state_dict(), strict=True)
    assert torch.equal(getattr(pml, parameter), getattr(ours, parameter))


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_forward_reads_W_in_place(name):
    """The D x C W is handed to the loss as a transposed view, never a copy made per call."""
    ours, _ = pair(name, C, D)
    x, y = batch()
    seen = []
    original = see_cuda.softmax_functional.softmax_family_see_loss

    def spy(embeddings, labels, classes, *args, **keywords):
        seen.append(classes)
        return original(embeddings, labels, classes, *args, **keywords)

    module = sys.modules[type(ours)._loss.__module__]  # where the module's loss calls the function
    mp = pytest.MonkeyPatch()
    mp.setattr(module, "softmax_family_see_loss", spy)
    try:
        ours(x, y)
    finally:
        mp.undo()
    assert seen[0].data_ptr() == class_vectors(ours).data_ptr()


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_see_equals_pml_on_the_batch_plus_lambda_pml_on_the_synthetic_rows(name):
    """L(X) + λ·L(Z) with Z the reference expansion of every row (threshold below -1) under given draws."""
    ours, pml = pair(name, C, D, LOSSES[name][2])
    x, y = batch()
    n, lam = 3, 0.3
    noise = torch.randn(B, n - 1, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expansion = see_cuda.SphericalExpansion(n_expansion=n, lam=lam, mode="threshold", threshold=-2.0)
    classes = class_vectors(ours)
    loss, stats = see_cuda.softmax_family_see_loss(x, y, classes, ours.settings, expansion=expansion, noise=noise,
                                                   implementation="reference")
    assert stats.num_expanded == B
    synthetic = reference.spherical_expansion(x.detach(), classes[y].detach(), n, noise).reshape(B * n, D)
    expected = pml(x, y) + lam * pml(synthetic, y.repeat_interleave(n))
    params = [x, *pml.parameters()]
    assert relative_error(loss.detach(), expected.detach()) <= 1e-9
    for got, want in zip(torch.autograd.grad(loss, [x, *ours.parameters()]), torch.autograd.grad(expected, params)):
        assert relative_error(got, want) <= 1e-9


@pytest.mark.parametrize("name", list(LOSSES))
def test_lambda_zero_is_the_plain_loss(name):
    settings_ = LOSSES[name][2]
    plain, _ = pair(name, C, D, settings_, implementation="reference")
    see, _ = pair(name, C, D, settings_, implementation="reference",
                  expansion=see_cuda.SphericalExpansion(n_expansion=3, lam=0.0, ratio=1.0))
    see.load_state_dict(plain.state_dict())
    x, y = batch()
    loss, grads = loss_and_grads(plain, x, y)
    see_loss, see_grads = loss_and_grads(see, x, y)
    assert see.last_stats.num_expanded == B
    assert torch.equal(loss, see_loss)
    for a, b in zip(grads, see_grads):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_float32_within_its_derived_bound(name):
    """float32 against float64, both ours: a cosine errs by (D + 4)u (docs/method.md §1); a logit by a·|f'|
    times that; the row's LSE - z_y by twice the largest such error, plus (C + 4)u of its value for the sum of C
    exponentials and the log; the mean keeps the largest row's bound."""
    ours, _ = pair(name, C, D, LOSSES[name][2])
    x, y = batch()
    loss64 = ours(x, y).detach()
    loss32 = ours.float()(x.detach().float(), y).detach().double()
    u = 2.0**-24
    logit_map = ours.settings.logit_map
    s = reference.l2_normalize(x.detach()) @ reference.l2_normalize(class_vectors(ours).detach().double()).t()
    slope = 1.0
    if logit_map.margin_kind == see_cuda.loss_settings.ANGULAR_MARGIN:
        target = s.gather(1, y[:, None])
        m = logit_map.margin
        slope = float((math.cos(m) + target.abs() * math.sin(m) / torch.sqrt(1 - target**2)).max())
    bound = 2 * logit_map.scale * max(1.0, slope) * (D + 4) * u + (C + 4) * u * float(loss64.abs())
    assert abs(float(loss32 - loss64)) <= bound


@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
@pytest.mark.parametrize("detach_synthetic", [None, False])
def test_gradcheck_float64(name, detach_synthetic):
    """The reference's gradients, plain and (through the expansion, detach_synthetic=False) with SEE.

    With SEE only w.r.t. x: the axes of the expansion are the class vectors detached (docs/method.md §4), which
    finite differences in the class vectors cannot see."""
    settings_ = LOSSES[name][2]
    ours, _ = pair(name, 4, 6, settings_)
    x, y = batch(rows=5, classes=4, dim=6)
    classes = class_vectors(ours).detach().clone().requires_grad_()
    n = 2
    noise = torch.randn(5, n - 1, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expansion = None if detach_synthetic is None else see_cuda.SphericalExpansion(
        n_expansion=n, lam=0.5, ratio=0.6, detach_synthetic=False)

    def f(x_, classes_):
        return see_cuda.softmax_family_see_loss(x_, y, classes_, ours.settings, expansion=expansion,
                                                noise=None if expansion is None else noise,
                                                implementation="reference")[0]

    if expansion is None:
        assert torch.autograd.gradcheck(f, (x.detach().requires_grad_(), classes))
    else:
        assert torch.autograd.gradcheck(lambda x_: f(x_, classes.detach()), (x.detach().requires_grad_(),))


@settings(max_examples=8, deadline=None)
@given(problem=loss_problems(max_batch=10, max_dim=10, max_classes=8))
def test_each_softmax_loss_equals_pml_on_random_problems(problem):
    x, y, proxies, _, _ = problem
    C_, D_ = proxies.shape
    for name in SOFTMAX_FAMILY:
        ours, pml = pair(name, C_, D_, LOSSES[name][2])
        with torch.no_grad():
            pml_param = pml.proxies if name == "ProxyNCA" else pml.W
            pml_param.copy_(proxies if name == "ProxyNCA" else proxies.t())
        ours.load_state_dict(pml.state_dict())
        xg = x.clone().requires_grad_()
        loss, grads = loss_and_grads(ours, xg, y)
        expected, expected_grads = loss_and_grads(pml, xg, y)
        assert relative_error(loss, expected) <= 1e-9 or abs(float(loss - expected)) <= 1e-12
        for got, want in zip(grads, expected_grads):
            assert float((got - want).abs().max()) <= 1e-9 * max(1.0, float(want.abs().max()))


def test_arcface_margin_in_degrees_and_its_continuation():
    """f(s) = cos(acos(s) + m) up to θ = π - m, then s - m·sin m (PML), m given in degrees."""
    logit_map = see_cuda.ArcFaceSettings(margin=30.0).logit_map
    m = math.radians(30.0)
    s = torch.tensor([0.9, 0.0, -0.8, -0.95], dtype=torch.float64)
    expected = torch.where(torch.acos(s) <= math.pi - m, torch.cos(torch.acos(s) + m), s - m * math.sin(m))
    assert torch.allclose(softmax_reference.target_margin(s, logit_map), expected, rtol=0, atol=1e-15)


def test_non_finite_input_gives_an_error_not_a_finite_loss():
    loss_fn = see_cuda.ArcFaceLoss(C, D).double()
    x, y = batch()
    x = x.detach().clone()
    x[0, 0] = math.nan
    with pytest.raises(ValueError, match="embeddings"):
        loss_fn(x, y)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(batch()[0], torch.full((B,), C))


@pytest.mark.parametrize("name", list(LOSSES))
def test_positional_settings_are_refused_not_misread(name):
    with pytest.raises(TypeError, match="keyword only"):
        LOSSES[name][0](C, D, 0.1, 32)


@pytest.mark.parametrize("keyword", ["reducer", "distance", "weight_regularizer", "embedding_regularizer",
                                     "weight_init_func"])
def test_pml_keywords_are_refused_by_name(keyword):
    with pytest.raises(TypeError, match=repr(keyword)):
        see_cuda.CosFaceLoss(C, D, **{keyword: object()})
    with pytest.raises(TypeError, match="unexpected keyword"):
        see_cuda.CosFaceLoss(C, D, no_such_setting=1)


@pytest.mark.parametrize("name", list(LOSSES))
def test_forward_takes_pml_arguments_and_refuses_what_it_cannot_honour(name):
    loss_fn = LOSSES[name][0](C, D).double()
    x, y = batch()
    assert torch.equal(loss_fn(x, y, None, None, None), loss_fn(x, y))
    with pytest.raises(ValueError, match="indices_tuple"):
        loss_fn(x, y, (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))
    with pytest.raises(ValueError, match="ref_emb"):
        loss_fn(x, y, None, x)


def test_settings_are_checked_when_built():
    with pytest.raises(ValueError, match="temperature"):
        see_cuda.NormalizedSoftmaxLoss(C, D, temperature=0.0)
    with pytest.raises(ValueError, match="margin"):
        see_cuda.ArcFaceLoss(C, D, margin=200.0)
    with pytest.raises(TypeError, match="expansion"):
        see_cuda.ArcFaceLoss(C, D, expansion={"lam": 0.1})
    with pytest.raises(ValueError, match="n_expansion"):
        see_cuda.ArcFaceLoss(C, 4, expansion=see_cuda.SphericalExpansion(n_expansion=4))
    with pytest.raises(ValueError, match="scale"):
        see_cuda.cosface_loss(batch()[0].float(), batch()[1], torch.randn(D, C), scale=1e38)


def test_the_schedule_warns_when_never_stepped_and_past_its_end():
    loss_fn = see_cuda.ArcFaceLoss(C, D, expansion=see_cuda.SphericalExpansion(n_expansion=3), num_epochs=2,
                                   steps_per_epoch=2).double()
    x, y = batch()
    loss_fn(x, y)
    with pytest.warns(UserWarning, match="step_epoch was never called"):
        loss_fn(x, y)
    assert loss_fn.expansion.ratio == pytest.approx(0.04)
    loss_fn.step_epoch(1)
    assert loss_fn.expansion.ratio == pytest.approx(0.22)
    with pytest.warns(UserWarning, match="past num_epochs"):
        loss_fn.step_epoch(3)


def test_without_a_schedule_the_expansion_is_used_as_given():
    expansion = see_cuda.SphericalExpansion(n_expansion=3, ratio=0.5)
    loss_fn = see_cuda.CosFaceLoss(C, D, expansion=expansion).double()
    loss_fn(*batch())
    assert loss_fn.expansion == expansion and loss_fn.last_stats.num_expanded == B // 2


def test_schedule_state_travels_beside_the_state_dict():
    def make():
        return see_cuda.ProxyNCALoss(C, D, expansion=see_cuda.SphericalExpansion(n_expansion=3), num_epochs=10,
                                     generator=torch.Generator().manual_seed(0))

    a = make()
    a.step_epoch(4)
    a.generator.manual_seed(7)
    b = make()
    b.load_state_dict(a.state_dict(), strict=True)
    b.load_schedule_state(a.schedule_state())
    assert b.epoch == 4 and b.expansion == a.expansion
    assert torch.equal(b.generator.get_state(), a.generator.get_state())


def test_see_proxy_anchor_loss_takes_pml_calls_and_state():
    """The flat spelling: settings by keyword only, PML's forward, PML's state dict (its schedule key optional)."""
    with pytest.raises(TypeError, match="keyword only"):
        see_cuda.SEEProxyAnchorLoss(C, D, 0.1, 32)
    with pytest.raises(TypeError, match="'reducer'"):
        see_cuda.SEEProxyAnchorLoss(C, D, reducer=None)
    _, pml = pair("ProxyAnchor", C, D)
    loss_fn = see_cuda.SEEProxyAnchorLoss(C, D, n_expansion=3, implementation="reference").double()
    loss_fn.load_state_dict(pml.state_dict(), strict=True)
    assert torch.equal(loss_fn.proxies, pml.proxies)
    x, y = batch()
    assert torch.isfinite(loss_fn(x, y, None))
    with pytest.raises(ValueError, match="indices_tuple"):
        loss_fn(x, y, (y, y, y))


@pytest.mark.parametrize("name", list(LOSSES))
def test_half_precision_embeddings_keep_float32_class_vectors(name):
    """bfloat16 embeddings (as autocast gives them) with int32 labels: the parameter stays float32 (PML casts its
    parameter to the embeddings' dtype in place), the loss is computed in float32 and equals the float32 loss of
    the same bfloat16 values."""
    loss_fn = LOSSES[name][0](C, D)
    x, y = batch(dtype=torch.float32)
    x16 = x.detach().bfloat16().requires_grad_()
    loss = loss_fn(x16, y.int())
    assert loss.dtype == torch.float32 and next(loss_fn.parameters()).dtype == torch.float32
    assert torch.allclose(loss, loss_fn(x16.detach().float(), y), rtol=1e-6)
    loss.backward()
    assert x16.grad.dtype == torch.bfloat16 and torch.isfinite(x16.grad).all()


def test_module_defaults_are_the_settings_defaults():
    """Defaults spelled once: each module's and each functional form's settings defaults are its settings class's."""
    import inspect

    pairs = [(see_cuda.ProxyNCALoss, see_cuda.proxy_nca_loss, see_cuda.ProxyNCASettings),
             (see_cuda.NormalizedSoftmaxLoss, see_cuda.normalized_softmax_loss, see_cuda.NormalizedSoftmaxSettings),
             (see_cuda.CosFaceLoss, see_cuda.cosface_loss, see_cuda.CosFaceSettings),
             (see_cuda.ArcFaceLoss, see_cuda.arcface_loss, see_cuda.ArcFaceSettings),
             (see_cuda.ProxyAnchorLoss, None, see_cuda.ProxyAnchorSettings)]
    for module, function, settings_cls in pairs:
        defaults = settings_cls()
        for fn in filter(None, (module.__init__, function)):
            parameters = inspect.signature(fn).parameters
            for field in dataclasses.fields(defaults):
                assert parameters[field.name].default == getattr(defaults, field.name), (fn, field.name)
        assert module(C, D).settings == defaults


def test_expansion_defaults_are_see_options_defaults():
    expansion, options = see_cuda.SphericalExpansion(), see_cuda.SEEOptions()
    for field in expansion.__dataclass_fields__:
        assert getattr(expansion, field) == getattr(options, field), field
    with pytest.raises(ValueError, match="lam"):
        see_cuda.SphericalExpansion(lam=-1.0)
    with pytest.raises(ValueError, match="mode"):
        see_cuda.SphericalExpansion(mode="all")


def test_see_proxy_anchor_loss_warns_about_its_schedule():
    """Without steps_per_epoch an epoch's worth is as many rows as classes: B = 12 >= C = 7 in one step."""
    loss_fn = see_cuda.SEEProxyAnchorLoss(C, D, n_expansion=3, implementation="reference", num_epochs=2).double()
    x, y = batch()
    with pytest.warns(UserWarning, match="step_epoch was never called"):
        loss_fn(x, y)
    with pytest.warns(UserWarning, match="past num_epochs"):
        loss_fn.step_epoch(3)


def test_no_schedule_warning_when_stepped_from_the_start():
    import warnings

    for loss_fn in (see_cuda.ArcFaceLoss(C, D, expansion=see_cuda.SphericalExpansion(n_expansion=3), num_epochs=2),
                    see_cuda.SEEProxyAnchorLoss(C, D, n_expansion=3, num_epochs=2)):
        loss_fn = loss_fn.double()
        loss_fn.step_epoch(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for epoch in range(3):
                loss_fn.step_epoch(epoch)
                loss_fn(*batch())
