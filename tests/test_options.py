"""The settings: SphericalExpansion and ProxyAnchorSettings as the parts of SEEOptions, and every
public signature's defaults tied to theirs."""
import dataclasses
import inspect

import pytest
import torch

import see_cuda
from see_cuda import ProxyAnchorSettings, SEEOptions, SphericalExpansion, reference
from see_cuda.sharded import ShardedSEEProxyAnchorLoss, sharded_see_loss

# Every public callable that takes settings as keywords, and which of them it takes.
SIGNATURES = [
    (see_cuda.fused_see_loss, SEEOptions),
    (sharded_see_loss, SEEOptions),
    (see_cuda.SEEProxyAnchorLoss.__init__, SEEOptions),
    (see_cuda.proxy_anchor_loss, ProxyAnchorSettings),
    (see_cuda.proxy_anchor_loss_with_synthetic, SEEOptions),
    (reference.proxy_anchor_loss, ProxyAnchorSettings),
    (reference.proxy_anchor_share, ProxyAnchorSettings),
    (reference.proxy_anchor_loss_with_synthetic, ProxyAnchorSettings),
]


@pytest.mark.parametrize("function, settings", SIGNATURES, ids=lambda v: getattr(v, "__qualname__", ""))
def test_public_signatures_take_their_defaults_from_the_settings(function, settings):
    defaults = {field.name: field.default for field in dataclasses.fields(settings)}
    parameters = inspect.signature(function).parameters
    shared = [name for name in parameters if name in defaults]
    assert shared, f"{function.__qualname__} takes none of {settings.__name__}'s fields"
    for name in shared:
        if parameters[name].default is not inspect.Parameter.empty:
            assert parameters[name].default == defaults[name], (function.__qualname__, name)


def test_the_sharded_module_passes_the_settings_on():
    """ShardedSEEProxyAnchorLoss takes the settings as **options: the replicated module's defaults hold."""
    loss_fn = ShardedSEEProxyAnchorLoss(4, 24, init_seed=0)
    assert loss_fn.options == SEEOptions(ratio=loss_fn.ratio, threshold=loss_fn.threshold)


def test_flat_options_are_their_two_parts():
    expansion = SphericalExpansion(n_expansion=5, lam=0.3, mode="threshold", threshold=0.2, detach_synthetic=False)
    loss = ProxyAnchorSettings(alpha=16.0, margin=0.2)
    options = SEEOptions.of(expansion, loss)
    assert options.expansion == expansion and options.loss == loss
    assert options == SEEOptions(n_expansion=5, lam=0.3, mode="threshold", threshold=0.2, detach_synthetic=False,
                                 alpha=16.0, margin=0.2)
    assert SEEOptions().expansion == SphericalExpansion() and SEEOptions().loss == ProxyAnchorSettings()
    assert options.replace(alpha=8.0).loss == ProxyAnchorSettings(alpha=8.0, margin=0.2)
    names = [{f.name for f in dataclasses.fields(cls)} for cls in (SEEOptions, SphericalExpansion, ProxyAnchorSettings)]
    assert names[0] == names[1] | names[2]
    with pytest.raises(TypeError, match="loss must be a see_cuda.ProxyAnchorSettings"):
        SEEOptions.of(expansion, expansion)


@pytest.mark.parametrize("build, error, message", [
    (lambda: SphericalExpansion(n_expansion=0), ValueError, "n_expansion must be >= 1"),
    (lambda: SphericalExpansion(mode="all"), ValueError, "mode must be one of"),
    (lambda: SphericalExpansion(detach_synthetic=1), TypeError, "detach_synthetic must be a bool"),
    (lambda: ProxyAnchorSettings(alpha=0.0), ValueError, "alpha must be > 0"),
    (lambda: ProxyAnchorSettings(margin=float("nan")), ValueError, "margin must be finite"),
    (lambda: SEEOptions(alpha=-1.0), ValueError, "alpha must be > 0"),
    (lambda: SEEOptions(ratio=1.5), ValueError, "ratio must be <= 1"),
    (lambda: SphericalExpansion().replace(lam=-0.1), ValueError, "lam must be >= 0"),
])
def test_each_part_is_checked_when_built(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_settings_are_frozen_and_expands_follows_the_mode():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SphericalExpansion().lam = 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProxyAnchorSettings().alpha = 1.0
    assert SphericalExpansion().expands and not SphericalExpansion(mode="none").expands
    assert not SEEOptions(mode="none").expands


def test_alpha_is_bounded_per_dtype_by_the_settings():
    ProxyAnchorSettings(alpha=1e5).check_dtype(torch.float32)
    with pytest.raises(ValueError, match="alpha=100000 is too large for a loss computed in torch.float16"):
        ProxyAnchorSettings(alpha=1e5).check_dtype(torch.float16)


def test_options_given_twice_are_refused_whatever_the_defaults():
    """resolve_options compares keywords with the defaults the signatures take: one spelling of each."""
    g = torch.Generator().manual_seed(0)
    x, y, proxies = torch.randn(6, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(3, 8, generator=g)
    options = SEEOptions(n_expansion=3)
    see_cuda.fused_see_loss(x, y, proxies, options=options, lam=SEEOptions().lam, implementation="reference")
    with pytest.raises(TypeError, match=r"not both \(got \['alpha'\]\)"):
        see_cuda.fused_see_loss(x, y, proxies, options=options, alpha=16.0, implementation="reference")


def test_proxy_anchor_logits_are_affine_maps_of_the_cosine():
    """The maps give the reference's terms: log(1 + Σ exp(logit)) over positives and negatives."""
    settings = ProxyAnchorSettings(alpha=8.0, margin=0.25)
    positive, negative = settings.logits
    s = torch.tensor([-0.5, 0.0, 0.75], dtype=torch.float64)
    torch.testing.assert_close(positive.scale * s + positive.shift, -8.0 * (s - 0.25), rtol=1e-15, atol=0)
    torch.testing.assert_close(negative.scale * s + negative.shift, 8.0 * (s + 0.25), rtol=1e-15, atol=0)
    x = torch.tensor([[1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    proxies = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    cosines = reference.l2_normalize(x) @ reference.l2_normalize(proxies).t()
    pos = torch.log1p(torch.exp(positive.scale * cosines[:, 0] + positive.shift).sum())  # class 0: both rows
    neg = torch.log1p(torch.exp(negative.scale * cosines[:, 1] + negative.shift).sum())  # class 1: both rows
    expected = pos / 1 + neg / 2  # |P+| = 1 class present; C = 2
    torch.testing.assert_close(reference.proxy_anchor_loss(x, y, proxies, 8.0, 0.25), expected, rtol=1e-12, atol=0)
