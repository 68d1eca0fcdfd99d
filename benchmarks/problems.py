"""The benchmark's shapes and the random batches it runs them on."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from see_cuda.selection import num_selected_by_fraction

# Several positives per class, as a class-balanced sampler gives: B / PER_CLASS
# classes drawn at random, each label repeated to fill the batch, then shuffled.
PER_CLASS = 4
LABEL_PATTERN = f"B/{PER_CLASS} random classes, {PER_CLASS} samples each (the last ones fewer if needed), shuffled"
# Embeddings of a half-trained network: own proxy plus noise of the same length,
# so positive cosines are around 0.7 and the expansion picks a real top fraction.
EMBEDDING_PATTERN = "x = unit proxy of its class + Gaussian noise of norm ~1; proxies Gaussian"

# (B, D, C) of the common benchmarks' training splits at the batch sizes used with SEE.
CONFIGS = {
    "CUB-like": (180, 512, 100),
    "Cars-like": (180, 512, 98),
    "SOP-like": (180, 128, 11318),
    "SOP-512": (180, 512, 11318),
    "In-Shop-like": (90, 384, 3997),
}
QUICK_CONFIG = ("quick", (32, 64, 16))
# Shapes with so many classes that the N x C similarity matrix does not fit (5.3 GB in float32 at
# N = 180 + 72·16 rows): run only with --config, the fused loss (in chunks of classes) and its floor.
MANY_CLASSES_CONFIGS = {"many-classes": (180, 128, 1_000_000)}
# There the fused loss is checked against itself in one chunk, at a class count where that fits.
MANY_CLASSES_CHECK = 100_000


@dataclass(frozen=True)
class Shape:
    """One benchmark point; k, m and N are the sizes the SEE loss works on."""

    name: str
    batch: int
    dim: int
    classes: int
    n_expansion: int
    ratio: float

    @property
    def many_classes(self) -> bool:
        """Too many classes for the implementations that form the N x C similarity matrix."""
        return self.name in MANY_CLASSES_CONFIGS

    @property
    def num_rows(self) -> int:  # N = B + m
        return self.batch + self.num_synthetic

    @property
    def num_expanded(self) -> int:  # k
        return num_selected_by_fraction(self.batch, self.ratio)

    @property
    def num_synthetic(self) -> int:  # m = k·n
        return self.num_expanded * self.n_expansion


@dataclass
class Batch:
    """Leaf tensors of one problem; embeddings and proxies require grad."""

    embeddings: torch.Tensor
    labels: torch.Tensor
    proxies: torch.Tensor

    def clear_grads(self) -> None:
        self.embeddings.grad = None
        self.proxies.grad = None


def batch_labels(batch: int, classes: int, generator: torch.Generator) -> torch.Tensor:
    """LABEL_PATTERN, on the CPU."""
    num_classes = max(1, min(classes, batch // PER_CLASS))
    chosen = torch.randperm(classes, generator=generator)[:num_classes]
    labels = chosen.repeat(math.ceil(batch / num_classes))[:batch]
    return labels[torch.randperm(batch, generator=generator)]


def make_batch(shape: Shape, dtype: torch.dtype, device: str, seed: int) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    proxies = torch.randn(shape.classes, shape.dim, generator=generator, dtype=torch.float64)
    labels = batch_labels(shape.batch, shape.classes, generator)
    unit_proxies = proxies / proxies.norm(dim=1, keepdim=True)
    noise = torch.randn(shape.batch, shape.dim, generator=generator, dtype=torch.float64) / math.sqrt(shape.dim)
    embeddings = unit_proxies[labels] + noise

    embeddings = embeddings.to(device=device, dtype=dtype).requires_grad_()
    # A Parameter, so that pytorch-metric-learning's loss can hold this very tensor.
    proxies = torch.nn.Parameter(proxies.to(device=device, dtype=dtype))
    return Batch(embeddings, labels.to(device), proxies)
