"""The settings of the SEE loss as one value, checked once when it is built."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import validation


@dataclass(frozen=True)
class SEEOptions:
    """What the SEE loss computes (docs/method.md §1-4), apart from its inputs.

    n_expansion: synthetic points per expanded sample (n); needs D >= n + 1.
    lam: weight λ of the synthetic term.
    mode: "fraction" expands the round(B·ratio) samples closest to their proxy;
        "threshold" those with positive cosine >= threshold; "none" expands
        nothing, and the loss is plain Proxy-Anchor.
    alpha, margin: Proxy-Anchor's scale α and margin δ.
    detach_synthetic: as the original, the synthetic term trains only the
        proxies; False lets its gradient reach the embeddings too.

    Invalid values raise TypeError/ValueError naming the field when the value is
    built; `replace(**changes)` gives a checked copy.
    """

    n_expansion: int = 16
    lam: float = 0.2
    mode: str = "fraction"
    ratio: float = 0.4
    threshold: float = 0.0
    alpha: float = 32.0
    margin: float = 0.1
    detach_synthetic: bool = True

    def __post_init__(self):
        validation.check_see_options(self)

    def replace(self, **changes) -> SEEOptions:
        return dataclasses.replace(self, **changes)

    @property
    def expands(self) -> bool:
        """Whether any sample can be expanded (mode is not "none")."""
        return self.mode != "none"


_DEFAULTS = SEEOptions()
FIELDS = tuple(field.name for field in dataclasses.fields(SEEOptions))


def resolve_options(options: SEEOptions | None, **keywords) -> SEEOptions:
    """The options of a call given either as `options=` or as keyword arguments, not both.

    The keywords are the fields of SEEOptions with their defaults; with
    `options` given, every keyword must still hold its default.
    """
    if options is None:
        return SEEOptions(**keywords)
    if not isinstance(options, SEEOptions):
        raise TypeError(f"options must be a see_cuda.SEEOptions, got {type(options).__name__}")
    changed = [name for name, value in keywords.items() if value != getattr(_DEFAULTS, name)]
    if changed:
        raise TypeError(f"give the loss settings either as options= or as keywords, not both (got {changed})")
    return options
