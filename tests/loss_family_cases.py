"""The loss family's modules beside their pytorch-metric-learning counterparts, for the oracle tests."""
from __future__ import annotations

import pytest
import torch

import see_cuda

pml_losses = pytest.importorskip("pytorch_metric_learning.losses", reason="pytorch-metric-learning is not installed")

# name -> (our class, PML's class, settings keywords that differ from the defaults, PML parameter name)
LOSSES = {
    "ProxyNCA": (see_cuda.ProxyNCALoss, pml_losses.ProxyNCALoss, {"softmax_scale": 1.5}, "proxies"),
    "NormalizedSoftmax": (see_cuda.NormalizedSoftmaxLoss, pml_losses.NormalizedSoftmaxLoss,
                          {"temperature": 0.1}, "W"),
    "CosFace": (see_cuda.CosFaceLoss, pml_losses.CosFaceLoss, {"margin": 0.2, "scale": 30.0}, "W"),
    "ArcFace": (see_cuda.ArcFaceLoss, pml_losses.ArcFaceLoss, {"margin": 20.0, "scale": 30.0}, "W"),
    "ProxyAnchor": (see_cuda.ProxyAnchorLoss, pml_losses.ProxyAnchorLoss, {"margin": 0.2, "alpha": 16.0},
                    "proxies"),
}
SOFTMAX_FAMILY = ["ProxyNCA", "NormalizedSoftmax", "CosFace", "ArcFace"]


def pair(name: str, C: int, D: int, settings: dict | None = None, dtype=torch.float64, **ours_keywords):
    """(ours, PML's) with PML's parameter loaded into ours, both in `dtype`."""
    ours_cls, pml_cls, _, _ = LOSSES[name]
    settings = {} if settings is None else settings
    pml = pml_cls(C, D, **settings).to(dtype)
    ours = ours_cls(C, D, **settings, **ours_keywords).to(dtype)
    ours.load_state_dict(pml.state_dict(), strict=True)
    return ours, pml


def class_vectors(module) -> torch.Tensor:
    """C x D class vectors of a module of either library (a view of W for the W layout)."""
    return module.proxies if hasattr(module, "proxies") else module.W.t()


def loss_and_grads(module, x, y):
    loss = module(x, y)
    grads = torch.autograd.grad(loss, [x, *module.parameters()])
    return loss.detach(), grads


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))
