"""The settings of the SEE loss, each spelled once, checked once when built.

`SphericalExpansion` holds the settings of the expansion, whatever the base
loss; `ProxyAnchorSettings` those of the base loss, Proxy-Anchor. A base loss
with other settings brings its own settings class in the same pattern
(see_cuda.dispatch keys its primitives by that class). `SEEOptions` is the
flat value of both that the public functions take, with `.expansion` and
`.loss`. The defaults are the fields' defaults here; the public signatures
take theirs from these (tests/test_options.py ties them).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

from . import validation


class _Checked:
    """A frozen dataclass that checks itself when built; `replace(**changes)` gives a checked copy."""

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class SphericalExpansion(_Checked):
    """What the expansion does (docs/method.md §2-4), whatever the base loss.

    n_expansion: synthetic points per expanded sample (n); needs D >= n + 1.
    lam: weight λ of the synthetic term.
    mode: "fraction" expands the round(B·ratio) samples closest to their proxy;
        "threshold" those with positive cosine >= threshold; "none" expands
        nothing, and the loss is the base loss alone.
    detach_synthetic: as the original, the synthetic term trains only the
        proxies; False lets its gradient reach the embeddings too.
    """

    n_expansion: int = 16
    lam: float = 0.2
    mode: str = "fraction"
    ratio: float = 0.4
    threshold: float = 0.0
    detach_synthetic: bool = True

    def __post_init__(self):
        validation.check_expansion_settings(self)

    @property
    def expands(self) -> bool:
        """Whether any sample can be expanded (mode is not "none")."""
        return self.mode != "none"


class AffineMap(NamedTuple):
    """A logit as an affine map of the cosine s: scale·s + shift."""

    scale: float
    shift: float


class ProxyAnchorLogits(NamedTuple):
    """Proxy-Anchor's logits: of a row's own class (positive) and of the other classes (negative)."""

    positive: AffineMap
    negative: AffineMap


@dataclass(frozen=True)
class ProxyAnchorSettings(_Checked):
    """Proxy-Anchor's scale α and margin δ (docs/method.md §1).

    α is also bounded per dtype when the loss is computed (check_dtype).
    """

    alpha: float = 32.0
    margin: float = 0.1

    def __post_init__(self):
        validation.check_proxy_anchor_settings(self.alpha, self.margin)

    @property
    def logits(self) -> ProxyAnchorLogits:
        """The logits the kernels form from a cosine s: -α(s - δ) for a positive, α(s + δ) for a negative."""
        return ProxyAnchorLogits(positive=AffineMap(-self.alpha, self.alpha * self.margin),
                                 negative=AffineMap(self.alpha, self.alpha * self.margin))

    def check_dtype(self, dtype) -> None:
        """α small enough that the loss in `dtype` stays finite (validation.max_alpha)."""
        validation.check_alpha_for_dtype(self.alpha, self.margin, dtype)


EXPANSION = SphericalExpansion()
NO_EXPANSION = SphericalExpansion(mode="none")  # the base loss alone
PROXY_ANCHOR = ProxyAnchorSettings()


@dataclass(frozen=True)
class SEEOptions(_Checked):
    """What the SEE loss with Proxy-Anchor computes (docs/method.md §1-4), apart from its inputs.

    The fields of SphericalExpansion (n_expansion, lam, mode, ratio,
    threshold, detach_synthetic) and of ProxyAnchorSettings (alpha, margin),
    as one flat value; `.expansion` and `.loss` give the two parts, and
    `SEEOptions.of(expansion, loss)` builds it from them. Invalid values raise
    TypeError/ValueError naming the field when the value is built.
    """

    n_expansion: int = EXPANSION.n_expansion
    lam: float = EXPANSION.lam
    mode: str = EXPANSION.mode
    ratio: float = EXPANSION.ratio
    threshold: float = EXPANSION.threshold
    alpha: float = PROXY_ANCHOR.alpha
    margin: float = PROXY_ANCHOR.margin
    detach_synthetic: bool = EXPANSION.detach_synthetic

    def __post_init__(self):
        # The parts check the fields; they are kept, so that a call does not build them again.
        fields = dataclasses.asdict(self)
        expansion = SphericalExpansion(**{name: fields[name] for name in EXPANSION_FIELDS})
        loss = ProxyAnchorSettings(**{name: fields[name] for name in LOSS_FIELDS})
        object.__setattr__(self, "_parts", (expansion, loss))

    @classmethod
    def of(cls, expansion: SphericalExpansion, loss: ProxyAnchorSettings) -> SEEOptions:
        """The options of an expansion and Proxy-Anchor settings."""
        if not isinstance(expansion, SphericalExpansion):
            raise TypeError(f"expansion must be a see_cuda.SphericalExpansion, got {type(expansion).__name__}")
        if not isinstance(loss, ProxyAnchorSettings):
            raise TypeError(f"loss must be a see_cuda.ProxyAnchorSettings, got {type(loss).__name__}")
        return cls(**dataclasses.asdict(expansion), **dataclasses.asdict(loss))

    @property
    def expansion(self) -> SphericalExpansion:
        return self._parts[0]

    @property
    def loss(self) -> ProxyAnchorSettings:
        return self._parts[1]

    @property
    def expands(self) -> bool:
        """Whether any sample can be expanded (mode is not "none")."""
        return self.expansion.expands


EXPANSION_FIELDS = tuple(field.name for field in dataclasses.fields(SphericalExpansion))
LOSS_FIELDS = tuple(field.name for field in dataclasses.fields(ProxyAnchorSettings))
FIELDS = tuple(field.name for field in dataclasses.fields(SEEOptions))
DEFAULTS = SEEOptions()


def resolve_options(options: SEEOptions | None, **keywords) -> SEEOptions:
    """The options of a call given either as `options=` or as keyword arguments, not both.

    The keywords are the fields of SEEOptions, whose defaults the public
    signatures take from DEFAULTS; with `options` given, every keyword must
    still hold its default.
    """
    if options is None:
        return SEEOptions(**keywords)
    if not isinstance(options, SEEOptions):
        raise TypeError(f"options must be a see_cuda.SEEOptions, got {type(options).__name__}")
    changed = [name for name, value in keywords.items() if value != getattr(DEFAULTS, name)]
    if changed:
        raise TypeError(f"give the loss settings either as options= or as keywords, not both (got {changed})")
    return options
