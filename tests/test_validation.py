"""Every bad input gets a TypeError/ValueError that names the argument."""
import pytest
import torch

import see_cuda

X, Y, P = torch.randn(6, 20), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(3, 20)

CASES = [
    (dict(embeddings=X[0]), ValueError, "embeddings must be 2-D"),
    (dict(embeddings=X.int()), TypeError, "embeddings must be a floating-point"),
    (dict(embeddings=X.numpy()), TypeError, "embeddings must be a torch.Tensor"),
    (dict(embeddings=X[:0]), ValueError, "at least one row"),
    (dict(proxies=torch.randn(3, 19)), ValueError, r"proxies must have shape \(C, 20\)"),
    (dict(proxies=P.double()), TypeError, "proxies must have the dtype of embeddings"),
    (dict(labels=Y.float()), TypeError, "labels must be an integer tensor"),
    (dict(labels=Y[:5]), ValueError, r"labels must have shape \(6,\)"),
    (dict(labels=Y + 1), ValueError, r"labels must lie in \[0, 3\)"),
    (dict(labels=Y - 1), ValueError, r"labels must lie in \[0, 3\)"),
    (dict(embeddings=X.clone().index_fill_(0, torch.tensor([2]), float("nan"))), ValueError, "embeddings contains NaN"),
    (dict(proxies=P.clone().fill_(float("inf"))), ValueError, "proxies contains NaN"),
    (dict(n_expansion=20), ValueError, "n_expansion=20 needs an embedding dimension D >= 21"),
    (dict(n_expansion=0), ValueError, "n_expansion must be >= 1"),
    (dict(n_expansion=2.0), TypeError, "n_expansion must be an int"),
    (dict(lam=-0.1), ValueError, "lam must be >= 0"),
    (dict(mode="top"), ValueError, "mode must be one of"),
    (dict(ratio=1.5), ValueError, "ratio must be <= 1"),
    (dict(alpha=0.0), ValueError, "alpha must be > 0"),
    (dict(alpha=1e38), ValueError, "alpha=1e[+]38 is too large for a loss computed in torch.float32"),
    (dict(margin=float("nan")), ValueError, "margin must be finite"),
    (dict(noise=torch.randn(6, 3, 20)), ValueError, r"noise must have shape \(6, 15, 20\)"),
    (dict(noise=torch.randn(6, 15, 20).index_fill_(1, torch.tensor([4]), 0.0)), ValueError,
     "noise has a draw that cannot be normalised"),
    # The squared norm of 1e-30 underflows in float32 (1e-60): the reference would divide 0 by 0.
    (dict(noise=torch.randn(6, 15, 20) * 1e-30), ValueError, "noise has a draw that cannot be normalised"),
    (dict(noise=torch.randn(6, 15, 20) * 1e30), ValueError, "noise has a draw that cannot be normalised"),
    (dict(generator=1234), TypeError, "generator must be a torch.Generator"),
    (dict(implementation="magic"), ValueError, "implementation must be one of"),
]


# The fused CPU loss checks label range and finiteness in its kernel, the
# reference path in Python: one message either way.
@pytest.mark.parametrize("implementation", ["auto", "reference"])
@pytest.mark.parametrize("override, error, message", CASES)
def test_fused_see_loss_rejects(override, error, message, implementation):
    kwargs = dict(embeddings=X, labels=Y, proxies=P)
    kwargs.update(override)
    kwargs.setdefault("implementation", implementation)
    with pytest.raises(error, match=message):
        see_cuda.fused_see_loss(**kwargs)


@pytest.mark.parametrize("override, error, message", CASES[:12] + [case for case in CASES if "alpha" in case[0]])
def test_proxy_anchor_loss_rejects(override, error, message):
    kwargs = dict(embeddings=X, labels=Y, proxies=P)
    kwargs.update(override)
    with pytest.raises(error, match=message):
        see_cuda.proxy_anchor_loss(**kwargs)


def test_module_rejects_a_too_small_embedding():
    with pytest.raises(ValueError, match="n_expansion=16 needs an embedding dimension D >= 17"):
        see_cuda.SEEProxyAnchorLoss(num_classes=5, embedding_size=8)


def test_module_rejects_labels_beyond_its_classes():
    loss_fn = see_cuda.SEEProxyAnchorLoss(num_classes=3, embedding_size=20, n_expansion=4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        loss_fn(X, torch.tensor([0, 1, 2, 3, 0, 1]))


def test_module_rejects_an_epoch_that_is_not_a_finite_number():
    loss_fn = see_cuda.SEEProxyAnchorLoss(num_classes=3, embedding_size=20, n_expansion=4)
    for epoch, error in ((float("nan"), ValueError), (-1, ValueError), ("3", TypeError)):
        with pytest.raises(error, match="epoch"):
            loss_fn.step_epoch(epoch)


# ---------------------------------------------------------------- labels of every integer dtype
INTEGER_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.uint16, torch.uint32,
                  torch.uint64]
LABEL_FUNCTIONS = {
    "proxy_anchor_loss": lambda y, impl: see_cuda.proxy_anchor_loss(X, y, P, implementation=impl),
    "proxy_anchor_loss_with_synthetic": lambda y, impl: see_cuda.proxy_anchor_loss_with_synthetic(
        X, y, P, X[:4] * 2, y[:4], implementation=impl),
    "fused_see_loss": lambda y, impl: see_cuda.fused_see_loss(
        X, y, P, n_expansion=4, noise=torch.randn(6, 3, 20, generator=torch.Generator().manual_seed(0)),
        implementation=impl),
    "fused_see_loss-attached": lambda y, impl: see_cuda.fused_see_loss(
        X, y, P, n_expansion=4, noise=torch.randn(6, 3, 20, generator=torch.Generator().manual_seed(0)),
        detach_synthetic=False, implementation=impl),
    "module": lambda y, impl: see_cuda.SEEProxyAnchorLoss(3, 20, n_expansion=4, implementation=impl)(X, y),
}


def _dtype_is_usable(dtype) -> bool:
    # torch's newer unsigned dtypes support few ops; conversion is what the library needs of them.
    try:
        Y.to(dtype).to(torch.int64)
        return True
    except (RuntimeError, TypeError):
        return False


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("name", LABEL_FUNCTIONS)
@pytest.mark.parametrize("dtype", [d for d in INTEGER_DTYPES if _dtype_is_usable(d)])
def test_labels_of_every_integer_dtype_give_the_int64_answer(implementation, name, dtype):
    """int32, int16 and uint8 labels failed inside the reference with an unclear error."""
    torch.manual_seed(0)
    expected = LABEL_FUNCTIONS[name](Y, implementation)
    torch.manual_seed(0)
    torch.testing.assert_close(LABEL_FUNCTIONS[name](Y.to(dtype), implementation), expected, rtol=0, atol=0)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("labels", [torch.tensor([0, 1, 2, 0, 1, 200], dtype=torch.uint8),
                                    torch.tensor([0, 1, 2, 0, 1, -3], dtype=torch.int8),
                                    torch.tensor([0, 1, 2, 0, 1, 3], dtype=torch.int32)])
def test_labels_of_narrow_dtypes_are_range_checked(implementation, labels):
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        see_cuda.proxy_anchor_loss(X, labels, P, implementation=implementation)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        see_cuda.fused_see_loss(X, labels, P, n_expansion=4, implementation=implementation)


# ---------------------------------------------------------------- selection, schedules, slerp, expansion
SCORES = torch.tensor([0.3, 0.9, -0.2, 0.5])


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(ratio=-0.5), ValueError, "ratio must be >= 0"),
    (dict(ratio=1.5), ValueError, "ratio must be <= 1"),
    (dict(scores=SCORES.reshape(2, 2)), ValueError, "scores must be 1-D"),
    (dict(scores=torch.tensor([1, 2, 3])), TypeError, "scores must be a floating-point"),
    (dict(scores=[0.1, 0.2]), TypeError, "scores must be a floating-point"),
    (dict(mode="top-k"), ValueError, "mode must be one of"),
    (dict(threshold=float("nan")), ValueError, "threshold must be finite"),
    (dict(scores=torch.tensor([0.3, float("nan")])), ValueError, "scores contains NaN"),
    (dict(scores=torch.zeros(4, device="meta"), mode="threshold"), ValueError, "mode='threshold'"),
])
def test_select_for_expansion_rejects(kwargs, error, message):
    """An unknown mode was treated as the threshold mode; a negative ratio and 2-D scores were accepted."""
    arguments = dict(scores=SCORES, mode="fraction", ratio=0.5, threshold=0.0)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        see_cuda.select_for_expansion(**arguments)


def test_select_for_expansion_modes():
    assert see_cuda.select_for_expansion(SCORES, "fraction", 0.5, 0.0).tolist() == [1, 3]
    assert see_cuda.select_for_expansion(SCORES, "threshold", 0.0, 0.4).tolist() == [1, 3]
    assert see_cuda.select_for_expansion(SCORES, "none", 0.5, 0.0).tolist() == []
    assert see_cuda.select_for_expansion(SCORES.to("meta"), "fraction", 0.5, 0.0).shape == (2,)


@pytest.mark.parametrize("call, message", [
    (lambda: see_cuda.fraction_schedule(float("nan"), 40), "epoch must be finite"),
    (lambda: see_cuda.fraction_schedule(-1, 40), "epoch must be >= 0"),
    (lambda: see_cuda.fraction_schedule(3, float("inf")), "num_epochs must be finite"),
    (lambda: see_cuda.fraction_schedule(3, 40, rho_min=-0.1), "rho_min must be >= 0"),
    (lambda: see_cuda.fraction_schedule(3, 40, rho_max=1.5), "rho_max must be <= 1"),
    (lambda: see_cuda.threshold_schedule(3, 40, float("nan"), 0.9), "tau_min must be finite"),
    (lambda: see_cuda.threshold_schedule(3, 40, 0.5, 0.9, lower_bound=float("-inf")), "lower_bound must be finite"),
    (lambda: see_cuda.threshold_schedule(-2, 40, 0.5, 0.9), "epoch must be >= 0"),
])
def test_schedules_reject_values_that_are_not_finite_or_in_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("check_values", [True, False])
@pytest.mark.parametrize("which", ["a", "b", "t"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_slerp_rejects_values_that_are_not_finite_on_the_cpu(implementation, check_values, which, bad):
    """slerp returned NaN silently for non-finite input; the CPU is checked whatever check_values says."""
    args = dict(a=torch.randn(3, 4), b=torch.randn(3, 4), t=torch.rand(3))
    args[which] = args[which].clone().view(-1).index_fill_(0, torch.tensor([1]), bad).view(args[which].shape)
    with pytest.raises(ValueError, match=f"{which} contains NaN or infinite values"):
        see_cuda.slerp(**args, implementation=implementation, check_values=check_values)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("which", ["z", "w", "noise"])
def test_spherical_expansion_rejects_values_that_are_not_finite_on_the_cpu(implementation, which):
    args = dict(z=torch.randn(3, 8), w=torch.randn(3, 8), noise=torch.randn(3, 3, 8))
    args[which] = args[which].clone().view(-1).index_fill_(0, torch.tensor([2]), float("nan")).view(args[which].shape)
    with pytest.raises(ValueError, match=f"{which} contains NaN or infinite values"):
        see_cuda.spherical_expansion(args["z"], args["w"], 4, noise=args["noise"], implementation=implementation,
                                     check_values=False)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e-30), (torch.float32, 1e25), (torch.float64, 1e-170),
                                          (torch.float16, 1e-4), (torch.float64, 0.0)])
def test_spherical_expansion_rejects_draws_that_cannot_be_normalised(implementation, dtype, scale):
    """noise * 1e-30 passed validation: the reference's loss was NaN and the fused one finite."""
    z, w = torch.randn(3, 8).to(dtype), torch.randn(3, 8).to(dtype)
    noise = (torch.randn(3, 3, 8, dtype=torch.float64) * scale).to(dtype)
    with pytest.raises(ValueError, match="noise has a draw that cannot be normalised"):
        see_cuda.spherical_expansion(z, w, 4, noise=noise, implementation=implementation)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
def test_noise_at_the_edges_of_the_range_that_can_be_normalised_is_used(implementation):
    """Draws are used by direction only: a scale far from 1 but inside the range gives the unit-scale answer."""
    x, noise = torch.randn(6, 20, dtype=torch.float64), torch.randn(6, 15, 20, dtype=torch.float64)
    expected = see_cuda.fused_see_loss(x, Y, P.double(), noise=noise, implementation=implementation)
    for scale in (1e-150, 1e150):
        got = see_cuda.fused_see_loss(x, Y, P.double(), noise=noise * scale, implementation=implementation)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("call", ["proxy_anchor_loss", "fused_see_loss", "fused_see_loss-attached", "slerp",
                                  "spherical_expansion"])
@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e20), (torch.float64, 1e160), (torch.float16, 300.0)])
def test_rows_whose_squared_norm_overflows_are_rejected(implementation, call, dtype, scale):
    """x / sqrt(|x|² + ε) is 0 when |x|² overflows: such a row would silently count as a zero vector
    (and in float16, where the kernels work in float32, the two implementations would disagree)."""
    x, proxies = X.to(dtype).clone(), P.to(dtype).clone()
    x[2] = torch.linspace(-1, 1, 20, dtype=torch.float64) * scale
    name = "a" if call == "slerp" else "z" if call == "spherical_expansion" else "embeddings"
    calls = {
        "proxy_anchor_loss": lambda: see_cuda.proxy_anchor_loss(x, Y, proxies, implementation=implementation),
        "fused_see_loss": lambda: see_cuda.fused_see_loss(x, Y, proxies, n_expansion=4, implementation=implementation),
        "fused_see_loss-attached": lambda: see_cuda.fused_see_loss(x, Y, proxies, n_expansion=4, detach_synthetic=False,
                                                                   implementation=implementation),
        "slerp": lambda: see_cuda.slerp(x, x.flip(0), 0.5, implementation=implementation),
        "spherical_expansion": lambda: see_cuda.spherical_expansion(x, proxies[Y], 4, implementation=implementation),
    }
    with pytest.raises(ValueError, match=f"{name} has a row whose squared norm overflows in {dtype}"):
        calls[call]()


@pytest.mark.parametrize("implementation", ["reference", "auto"])
def test_large_rows_that_can_be_normalised_are_used(implementation):
    """float16 embeddings with float32 proxies are normalised in float32: entries of 300 are fine there."""
    x = X.clone()
    x[2] = torch.linspace(-1, 1, 20) * 300
    expected = see_cuda.proxy_anchor_loss(x, Y, P, implementation=implementation)
    got = see_cuda.proxy_anchor_loss(x.half(), Y, P, implementation=implementation)
    torch.testing.assert_close(got, expected, rtol=1e-2, atol=0)


@pytest.mark.parametrize("implementation", ["reference", "auto"])
@pytest.mark.parametrize("mode", ["none", "fraction"])
def test_infinite_half_precision_embeddings_with_float32_proxies_are_rejected(implementation, mode):
    """The check compared float16 entries with a limit that rounded to inf in float16: inf passed, and
    the fused loss was 0 (mode 'none') and the reference's NaN."""
    x = torch.tensor([[float("inf"), -0.2935]], dtype=torch.float16)
    loss_fn = see_cuda.SEEProxyAnchorLoss(1, 2, n_expansion=1, mode=mode, implementation=implementation)
    with pytest.raises(ValueError, match="embeddings contains NaN or infinite values"):
        loss_fn(x, torch.tensor([0]))


@pytest.mark.parametrize("implementation", ["reference", "auto"])
def test_float16_rows_too_small_for_the_normalisation_are_rejected(implementation):
    """In float16 the ε of x / sqrt(|x|² + 1e-12) is 0: a zero row divided 0 by 0 in the reference (NaN)
    while the kernels, in float32, gave 0."""
    z, w = torch.zeros(1, 3, dtype=torch.float16), torch.randn(1, 3).half()
    with pytest.raises(ValueError, match="z has a row whose squared norm .* underflows"):
        see_cuda.spherical_expansion(z, w, 2, noise=torch.randn(1, 1, 3).half(), implementation=implementation)
    # With float32 proxies the computation is float32, where ε keeps a zero row finite.
    x, proxies = torch.zeros(2, 3, dtype=torch.float16), torch.randn(2, 3)
    assert torch.isfinite(see_cuda.proxy_anchor_loss(x, torch.tensor([0, 1]), proxies, implementation=implementation))


# ---------------------------------------------------------------- chunk_bytes: what the op's int64 takes
@pytest.mark.parametrize("chunk_bytes, error, message", [
    (2**63, ValueError, r"chunk_bytes must be <= 9223372036854775807, got 9223372036854775808"),
    (2**70, ValueError, r"chunk_bytes must be <= 9223372036854775807"),
    (0, ValueError, r"chunk_bytes must be >= 1"),
    (1.0, TypeError, r"chunk_bytes must be an int"),
])
def test_chunk_bytes_beyond_int64_is_refused_in_the_constructor_and_in_every_call(chunk_bytes, error, message):
    from see_cuda.sharded import ShardedSEEProxyAnchorLoss, sharded_see_loss

    g = torch.Generator().manual_seed(0)
    x, y, proxies = torch.randn(6, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(3, 8, generator=g)
    synthetic, synthetic_labels = torch.randn(2, 8, generator=g), torch.tensor([0, 1])
    calls = {
        "SEEProxyAnchorLoss": lambda: see_cuda.SEEProxyAnchorLoss(3, 8, n_expansion=3, chunk_bytes=chunk_bytes),
        "ShardedSEEProxyAnchorLoss": lambda: ShardedSEEProxyAnchorLoss(3, 8, n_expansion=3, chunk_bytes=chunk_bytes,
                                                                       init_seed=0),
        "fused_see_loss": lambda: see_cuda.fused_see_loss(x, y, proxies, n_expansion=3, chunk_bytes=chunk_bytes),
        "proxy_anchor_loss": lambda: see_cuda.proxy_anchor_loss(x, y, proxies, chunk_bytes=chunk_bytes),
        "proxy_anchor_loss_with_synthetic": lambda: see_cuda.proxy_anchor_loss_with_synthetic(
            x, y, proxies, synthetic, synthetic_labels, chunk_bytes=chunk_bytes),
        "sharded_see_loss": lambda: sharded_see_loss(x, y, proxies, 3, n_expansion=3, chunk_bytes=chunk_bytes),
    }
    for name, call in calls.items():
        with pytest.raises(error, match=message):
            call()
            pytest.fail(f"{name} accepted chunk_bytes={chunk_bytes}")


def test_chunk_bytes_at_the_int64_limit_is_one_chunk():
    g = torch.Generator().manual_seed(1)
    x, y, proxies = torch.randn(6, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(3, 8, generator=g)
    largest = see_cuda.proxy_anchor_loss(x, y, proxies, chunk_bytes=2**63 - 1)
    assert torch.equal(largest, see_cuda.proxy_anchor_loss(x, y, proxies))
    module = see_cuda.SEEProxyAnchorLoss(3, 8, n_expansion=3, chunk_bytes=2**63 - 1)
    assert torch.isfinite(module(x, y))
