"""Named budgets of `python -m see_cuda.train.compare`: the flags of every run, the
pretraining of the backbone (Glyphs), and the grid axes, with the reasons for each."""
from __future__ import annotations

from dataclasses import dataclass, replace


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
    # The base losses compared plain against SEE, each in <out>/<loss>/, unless --base-losses
    # says otherwise; empty: the one loss of the flags' --base-loss.
    base_losses: tuple[str, ...] = ()

    def title_for(self, base_losses) -> str:
        """The reports' title: with several base losses each is compared with itself plus SEE, not with PA."""
        return self.title.replace("PA vs PA + SEE", "plain vs SEE per loss") if base_losses else self.title

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
# with a low-dimensional embedding and many classes? Sized by pilot runs (their curves and
# the reasons are in docs/glyphs.md) to about 4 hours of one thread on the shared 2-core machine:
# - 48 px images and a strided CNN of width 16: ~95 ms a batch of 120 under the usual load,
#   about half of 64 px, and PA's plateau is about as high. At 32 px a step is cheaper
#   still, but PA needs many more epochs to level off.
# - One split for every cell: 4,000 training characters set aside, the 1,000 test characters
#   after them; a 1,000-class cell trains on 1,000 of the 4,000. The pool is a flag, so a
#   command for some of the cells (--train-classes 1000) keeps the same split.
# - Pretraining once on 1,894 other characters (2,500 drawn, the retrieval split's removed),
#   15 epochs at lr 1e-3: 99% training accuracy in ~3-4 min. (4,584 characters at lr 3e-3
#   stayed at chance for 12 epochs.)
# - Fine-tuning at a constant lr 5e-4, proxies 5e-2: a cosine decay froze PA ~3 points below
#   the constant rate, and lr 1e-3 started lower.
# - Epochs per class count, each where PA's R@1 has levelled off: 40 at 1,000 classes (1,320
#   batches), 16 at 4,000 (2,128 batches; an epoch there is 4x the batches).
REGIMES["dims-classes"] = Regime(
    "Glyphs, pretrained small CNN: PA vs PA + SEE over embedding size and training classes",
    ("--glyphs-image-size", "48", "--glyphs-class-pool", "4000", "--cnn-width", "16", "--cnn-stem-stride", "2",
     "--lr", "5e-4", "--proxy-lr", "5e-2", "--epochs", "40"),
    pretraining=Pretraining(characters_drawn=2500, epochs=15, lr=1e-3),
    dims=(32, 64, 256), train_classes=(1000, 4000), epochs_by_classes=((1000, 40), (4000, 16)), seeds=5)

# The same grid with the rates at a tenth over the last third of the epochs: at the constant
# rate PA's R@1 still rose 1.1-1.8 points over the last quarter (results/glyphs/dims-classes),
# and 0.7-0.8 at twice the epochs, so the constant rate gives no plateau a CPU can afford.
# The last quarter of the epochs, which the reports' late gain measures, lies wholly after
# the fall (epochs 28 of 40 and 12 of 16, counting from 1, are the first at the lower rate).
REGIMES["dims-classes-step"] = replace(
    REGIMES["dims-classes"],
    title="Glyphs, pretrained small CNN, lr a tenth over the last third: PA vs PA + SEE over embedding size and "
          "training classes",
    flags=REGIMES["dims-classes"].flags + ("--lr-schedule", "step"))

# A harder protocol for the loss family (docs/glyphs.md, "The loss-family grid"): on the
# dims-classes protocol PA reached 91-96% R@1, near the benchmark's ceiling, and no interval
# excluded 0. Training on two faces (Sans and Serif Regular) instead of four leaves the bold
# test weights further from anything seen: PA's R@1 falls to ~60-65% with the same network,
# pretraining (on those two faces and the two middle weights) and budget. The runs are
# cheaper too (half the images per epoch): ~1 min at 1,000 classes on one thread.
# - Epochs: 40 at 1,000 classes, 24 at 4,000: at 16 PA was still climbing when the rate fell.
# - Each loss at PML's defaults (Normalized Softmax T = 0.05, ArcFace s = 64 and m = 28.6°).
# - Class vectors (proxies) at lr 0.2 for every loss, chosen on plain runs at 32-d: 0.05 left
#   ArcFace at 25% (it fell after the first epochs) and Normalized Softmax at 51%; 0.005 was
#   worse still, and 1.0 cost ArcFace 3 points. PA gains ~1 point at 0.2 over 0.05.
REGIMES["family"] = Regime(
    "Glyphs, two training faces, pretrained small CNN: plain vs SEE per loss over embedding size and "
    "training classes",
    ("--glyphs-image-size", "48", "--glyphs-class-pool", "4000", "--glyphs-train-faces",
     "Sans-Regular-JP,Serif-Regular-JP", "--cnn-width", "16", "--cnn-stem-stride", "2",
     "--lr", "5e-4", "--proxy-lr", "0.2", "--lr-schedule", "step", "--epochs", "40"),
    pretraining=Pretraining(characters_drawn=2500, epochs=15, lr=1e-3),
    dims=(32, 128), train_classes=(1000, 4000), epochs_by_classes=((1000, 40), (4000, 24)), seeds=5,
    base_losses=("proxy-anchor", "normalized-softmax", "arcface"))
