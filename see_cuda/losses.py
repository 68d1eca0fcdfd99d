"""The loss as an nn.Module that owns the proxies, called like pytorch-metric-learning's losses."""
from __future__ import annotations

import torch
from torch import nn

from . import validation
from .functional import fused_see_loss
from .selection import fraction_schedule, threshold_schedule


class SEEProxyAnchorLoss(nn.Module):
    """Proxy-Anchor loss with Spherical Embedding Expansion.

    `loss_fn = SEEProxyAnchorLoss(num_classes, embedding_size)`, then
    `loss = loss_fn(embeddings, labels)` with embeddings B x D and labels B in
    [0, num_classes). The C x D proxies are a parameter of the module
    (`loss_fn.proxies`, kaiming-normal with fan_out as in Proxy-Anchor); give them
    their own learning rate in the optimizer. Call `step_epoch(epoch)` at the start
    of each epoch to advance the expansion schedule (SEE_METHOD.md §2).

    Args:
        num_classes, embedding_size: C and D.
        n_expansion: synthetic points per expanded sample (16); D >= n + 1.
        lam: weight of the synthetic term (0.2, the original training script's).
        mode: "fraction" (default) or "threshold".
        num_epochs: length of training E, for the schedules (default 40).
        rho_min, rho_max: fraction schedule bounds (0.04 → 0.4).
        tau_min, tau_max, tau_lower_bound: threshold schedule (0.5 → 0.9, floor 0).
        alpha, margin: Proxy-Anchor's α (32) and δ (0.1).
        detach_synthetic: the synthetic term trains only the proxies (True).
        generator: a torch.Generator for the random frames (optional).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        n_expansion: int = 16,
        lam: float = 0.2,
        mode: str = "fraction",
        num_epochs: int = 40,
        rho_min: float = 0.04,
        rho_max: float = 0.4,
        tau_min: float = 0.5,
        tau_max: float = 0.9,
        tau_lower_bound: float = 0.0,
        alpha: float = 32.0,
        margin: float = 0.1,
        detach_synthetic: bool = True,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        validation.check_positive_int(num_classes, "num_classes")
        validation.check_positive_int(embedding_size, "embedding_size")
        validation.check_positive_int(num_epochs, "num_epochs")
        validation.check_see_options(n_expansion, lam, mode, rho_max, tau_max, embedding_size)
        validation.check_real(rho_min, "rho_min", low=0.0, high=1.0)
        validation.check_loss_options(alpha, margin)
        self.num_classes, self.embedding_size = num_classes, embedding_size
        self.n_expansion, self.lam, self.mode = n_expansion, lam, mode
        self.num_epochs = num_epochs
        self.rho_min, self.rho_max = rho_min, rho_max
        self.tau_min, self.tau_max, self.tau_lower_bound = tau_min, tau_max, tau_lower_bound
        self.alpha, self.margin = alpha, margin
        self.detach_synthetic = detach_synthetic
        self.generator = generator
        self.proxies = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")
        self.epoch = 0
        self.last_stats = None

    def step_epoch(self, epoch: int | None = None) -> None:
        """Set the schedule to `epoch` (or advance it by one)."""
        self.epoch = self.epoch + 1 if epoch is None else epoch

    @property
    def ratio(self) -> float:
        """The fraction of the batch expanded at the current epoch (fraction mode)."""
        return fraction_schedule(self.epoch, self.num_epochs, self.rho_min, self.rho_max)

    @property
    def threshold(self) -> float:
        """The cosine a sample needs to be expanded at the current epoch (threshold mode)."""
        return threshold_schedule(self.epoch, self.num_epochs, self.tau_min, self.tau_max, self.tau_lower_bound)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, self.last_stats = fused_see_loss(
            embeddings, labels, self.proxies, n_expansion=self.n_expansion, lam=self.lam, mode=self.mode,
            ratio=self.ratio, threshold=self.threshold, alpha=self.alpha, margin=self.margin,
            detach_synthetic=self.detach_synthetic, generator=self.generator, return_stats=True,
        )
        return loss

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, n_expansion={self.n_expansion}, "
            f"lam={self.lam}, mode={self.mode!r}, alpha={self.alpha}, margin={self.margin}"
        )
