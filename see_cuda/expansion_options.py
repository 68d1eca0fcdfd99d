"""The settings of the expansion, whatever the base loss (docs/method.md §2-4)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import validation
from .selection import MODES


@dataclass(frozen=True)
class SphericalExpansion:
    """How SEE expands a batch: checked when built, `replace(**changes)` gives a checked copy.

    n_expansion: synthetic points per expanded sample (n); needs D >= n + 1.
    lam: weight λ of the synthetic term; 0 gives the plain loss.
    mode: "fraction" (the round(B·ratio) samples closest to their class vector),
        "threshold" (those with positive cosine >= threshold) or "none" (no expansion).
    detach_synthetic: the synthetic term trains only the class vectors (True,
        the original); False lets its gradient reach the embeddings too.
    """

    n_expansion: int = 16
    lam: float = 0.2
    mode: str = "fraction"
    ratio: float = 0.4
    threshold: float = 0.0
    detach_synthetic: bool = True

    def __post_init__(self):
        validation.check_positive_int(self.n_expansion, "n_expansion")
        validation.check_real(self.lam, "lam", low=0.0)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        validation.check_real(self.ratio, "ratio", low=0.0, high=1.0)
        validation.check_real(self.threshold, "threshold")
        validation.check_bool(self.detach_synthetic, "detach_synthetic")

    def replace(self, **changes) -> SphericalExpansion:
        return dataclasses.replace(self, **changes)

    @property
    def expands(self) -> bool:
        """Whether any sample can be expanded (mode is not "none")."""
        return self.mode != "none"
