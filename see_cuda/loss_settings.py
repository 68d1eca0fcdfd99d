"""The settings of each softmax-family loss, one frozen value per loss, checked when built.

(Proxy-Anchor's, ProxyAnchorSettings, are in see_cuda.options with the expansion's.)

Each softmax-family loss gives its logits as an affine map of the cosine with
a margin on the target class (docs/method.md §7): `logit_map` is that map,
the one value the reference and the kernels read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from . import validation

# What the target's cosine becomes before the scale (docs/method.md §7).
NO_MARGIN, COSINE_MARGIN, ANGULAR_MARGIN = 0, 1, 2


class LogitMap(NamedTuple):
    """z_ic = scale·s_ic + bias, and scale·f(s_iy) + bias for the target; f given by (margin_kind, margin)."""

    scale: float
    bias: float
    margin_kind: int
    margin: float  # COSINE_MARGIN: m of s - m; ANGULAR_MARGIN: m in radians


class _SoftmaxSettings:
    """What the settings of every softmax-family loss share: the checks of their fields when built (each
    of POSITIVE > 0; a margin, if any, within MARGIN_RANGE) and their bound per dtype."""

    POSITIVE: ClassVar[tuple] = ()
    MARGIN_RANGE: ClassVar[tuple] = (None, None)

    def __post_init__(self):
        for name in self.POSITIVE:
            validation.check_real(getattr(self, name), name, low=0.0, strict_low=True)
        if hasattr(self, "margin"):
            validation.check_real(self.margin, "margin", *self.MARGIN_RANGE)

    def check_dtype(self, dtype) -> None:
        """Every logit within max/4 of `dtype`, so that the loss and its terms stay finite."""
        validation.check_logit_map_for_dtype(self.logit_map, dtype)


@dataclass(frozen=True)
class ProxyNCASettings(_SoftmaxSettings):
    """Proxy-NCA as PML: softmax of -softmax_scale·|x̂ - p̂|² = softmax_scale·(2s - 2) over the classes."""

    POSITIVE: ClassVar[tuple] = ("softmax_scale",)
    softmax_scale: float = 1.0

    @property
    def logit_map(self) -> LogitMap:
        return LogitMap(2.0 * self.softmax_scale, -2.0 * self.softmax_scale, NO_MARGIN, 0.0)


@dataclass(frozen=True)
class NormalizedSoftmaxSettings(_SoftmaxSettings):
    """Normalized Softmax: cosines divided by the temperature."""

    POSITIVE: ClassVar[tuple] = ("temperature",)
    temperature: float = 0.05

    @property
    def logit_map(self) -> LogitMap:
        return LogitMap(1.0 / self.temperature, 0.0, NO_MARGIN, 0.0)


@dataclass(frozen=True)
class CosFaceSettings(_SoftmaxSettings):
    """CosFace: scale·(s - margin) for the target, scale·s for the others."""

    POSITIVE: ClassVar[tuple] = ("scale",)
    margin: float = 0.35
    scale: float = 64.0

    @property
    def logit_map(self) -> LogitMap:
        return LogitMap(float(self.scale), 0.0, COSINE_MARGIN, float(self.margin))


@dataclass(frozen=True)
class ArcFaceSettings(_SoftmaxSettings):
    """ArcFace: scale·cos(θ + m) for the target, m = margin in degrees as in PML (28.6)."""

    POSITIVE: ClassVar[tuple] = ("scale",)
    # cos(θ + m) falls with θ up to π - m only for 0 <= m <= π (docs/method.md §7).
    MARGIN_RANGE: ClassVar[tuple] = (0.0, 180.0)
    margin: float = 28.6
    scale: float = 64.0

    @property
    def logit_map(self) -> LogitMap:
        return LogitMap(float(self.scale), 0.0, ANGULAR_MARGIN, math.radians(self.margin))


SOFTMAX_FAMILY = (ProxyNCASettings, NormalizedSoftmaxSettings, CosFaceSettings, ArcFaceSettings)
