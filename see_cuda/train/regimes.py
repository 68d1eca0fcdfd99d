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
    # Epochs per training class count (a grid whose cells differ in images per epoch);
    # --epochs on the command line overrides it for every cell.
    epochs_by_classes: tuple[tuple[int, int], ...] = ()
    seeds: int = 3  # paired seeds unless --seeds says otherwise

    def epochs_for(self, train_classes: int | None) -> int | None:
        """The regime's epochs for a class count; None: the flags' --epochs."""
        if not self.epochs_by_classes or train_classes is None:
            return None
        table = dict(self.epochs_by_classes)
        if train_classes not in table:
            raise ValueError(f"the regime has epochs for {sorted(table)} training classes, not {train_classes}; "
                             "pass --epochs to set them for every cell")
        return table[train_classes]


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

# The grid of docs/glyphs.md ("The embedding-size x class-count grid"): does SEE help more
# with a low-dimensional embedding and many classes? Sized by pilot runs to about 3-4 hours
# of one thread on the shared 2-core machine (the reasons, with the pilot curves, are in
# docs/glyphs.md):
# - 48 px images, strided CNN of width 16: a third cheaper than 64 px, and PA lands at the
#   same R@1 (~91% at the plateau of a 64-d, 1,000-class cell); the 4,000 + 1,000 retrieval
#   characters come from one split, so every cell is tested on the same 1,000 characters.
# - Pretraining once on ~1,900 other characters (2,500 drawn, those of the retrieval split
#   removed), 15 epochs at lr 1e-3: 99% training accuracy in ~3-4 minutes. (4,600 characters
#   at lr 3e-3 stayed at chance for 12 epochs; 500 left the backbone weaker.)
# - Epochs per class count, so that both reach PA's plateau with about the same number of
#   steps (1,320 and 1,596 batches of 120) and about the same number of steps at high ρ
#   (ρ >= 0.3 in the last ~35% of the epochs): 40 epochs at 1,000 classes, 12 at 4,000.
REGIMES["dims-classes"] = Regime(
    "Glyphs, pretrained small CNN: PA vs PA + SEE over embedding size and training classes",
    ("--glyphs-image-size", "48", "--cnn-width", "16", "--cnn-stem-stride", "2", "--lr", "5e-4", "--epochs", "40"),
    pretraining=Pretraining(characters_drawn=2500, epochs=15, lr=1e-3),
    dims=(32, 64, 256), train_classes=(1000, 4000), epochs_by_classes=((1000, 40), (4000, 12)), seeds=5)
