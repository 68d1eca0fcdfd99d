"""Which samples are expanded, and the epoch schedules (docs/method.md §2)."""
from __future__ import annotations

import math

import torch

# "none" expands no sample: the SEE loss is then plain Proxy-Anchor.
MODES = ("fraction", "threshold", "none")


def fraction_schedule(epoch: float, num_epochs: float, rho_min: float = 0.04, rho_max: float = 0.4) -> float:
    """ρ(e): the fraction of the batch to expand, rising from ρ_min at epoch 0 to ρ_max at the last."""
    progress = min(epoch, 200) / max(min(num_epochs, 200), 1)
    return rho_max - (rho_max - rho_min) * (math.cos(math.pi * progress) + 1) / 2


def threshold_schedule(
    epoch: float, num_epochs: float, tau_min: float, tau_max: float, lower_bound: float = 0.0
) -> float:
    """τ(e): the cosine a sample needs to be expanded, falling from τ_max to τ_min."""
    tau = tau_min + (tau_max - tau_min) * (math.cos(math.pi * epoch / max(num_epochs, 1)) + 1) / 2
    return max(lower_bound, tau)


def num_selected_by_fraction(batch_size: int, ratio: float) -> int:
    """k = round(B·ρ), as the original."""
    return int(round(batch_size * ratio))


def select_for_expansion(scores: torch.Tensor, mode: str, ratio: float, threshold: float) -> torch.Tensor:
    """Indices of the samples to expand, given their detached positive cosines.

    fraction: the round(B·ratio) largest scores, largest first; equal scores
        in batch order (torch.topk leaves ties unordered, and the order decides
        which noise each sample gets).
    threshold: every sample whose score is >= threshold, in batch order.
    none: no sample.
    """
    if mode == "none":
        return torch.zeros(0, dtype=torch.int64, device=scores.device)
    if mode == "fraction":
        k = num_selected_by_fraction(scores.numel(), ratio)
        return torch.sort(scores, descending=True, stable=True).indices[:k]
    return torch.nonzero(scores >= threshold).flatten()
