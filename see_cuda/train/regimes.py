"""Named budgets of `python -m see_cuda.train.compare`: the flags of every run, the
pretraining of the backbone (Glyphs), and the grid axes, with the reasons for each."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pretraining:
    """Cross-entropy pretraining of the small CNN on characters outside the retrieval split,
    once per comparison (`pretrain.py`); its width, stride and image size are the runs'."""
    characters_drawn: int  # drawn before the retrieval characters are removed
    epochs: int
    batch_size: int = 64
    lr: float = 3e-3


@dataclass(frozen=True)
class Regime:
    title: str
    flags: tuple[str, ...]  # `python -m see_cuda.train` flags of every run (later flags override)
    pretraining: Pretraining | None = None
    dims: tuple[int, ...] = ()  # a grid over embedding sizes; empty: one cell at --embedding-size
    train_classes: tuple[int, ...] = ()  # Glyphs: a grid over training class counts

    @property
    def is_grid(self) -> bool:
        return bool(self.dims or self.train_classes)


REGIMES = {
    # Budgets sized for a shared 2-core CPU (~0.6 s per batch of 120 at width 8):
    # a regime's whole comparison in about 10-15 minutes.
    "scratch": Regime("Glyphs, small CNN from scratch: PA vs PA + SEE",
                      ("--epochs", "5", "--cnn-width", "8", "--lr", "1e-3")),
    # The calibration budget of docs/glyphs.md (330 steps) with a cheaper, strided CNN.
    "scratch-long": Regime("Glyphs, strided small CNN from scratch, 330 steps: PA vs PA + SEE",
                           ("--epochs", "10", "--cnn-width", "16", "--cnn-stem-stride", "2", "--lr", "1e-3")),
    # ~500 classes after the retrieval characters are removed: few enough to learn in minutes.
    "pretrained": Regime("Glyphs, small CNN pretrained on disjoint characters: PA vs PA + SEE",
                         ("--epochs", "4", "--cnn-width", "8", "--lr", "5e-4"),
                         pretraining=Pretraining(characters_drawn=560, epochs=12)),
}
