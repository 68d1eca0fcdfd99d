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
    (dict(margin=float("nan")), ValueError, "margin must be finite"),
    (dict(noise=torch.randn(6, 3, 20)), ValueError, r"noise must have shape \(6, 15, 20\)"),
    (dict(noise=torch.randn(6, 15, 20).index_fill_(1, torch.tensor([4]), 0.0)), ValueError,
     "noise has an all-zero draw"),
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


@pytest.mark.parametrize("override, error, message", CASES[:12])
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
