"""The loss modules inside pytorch-metric-learning's training loop, loss combiner and tester (skips without PML)."""
from __future__ import annotations

import math

import pytest
import torch

import see_cuda

trainers = pytest.importorskip("pytorch_metric_learning.trainers", reason="pytorch-metric-learning is not installed")
pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
testers = pytest.importorskip("pytorch_metric_learning.testers")
accuracy_calculator = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator")

CLASSES, DIM, EMBEDDING, ROWS = 4, 6, 8, 48


class Blobs(torch.utils.data.Dataset):
    """Gaussian blobs, one per class: a data set a linear model separates in a few steps."""

    def __init__(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(ROWS) % CLASSES
        centres = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(0)) * 3
        self.data = centres[self.labels] + 0.3 * torch.randn(ROWS, DIM, generator=g)

    def __len__(self):
        return ROWS

    def __getitem__(self, i):
        return self.data[i], self.labels[i]


def train(loss_funcs: dict, loss_parameters, iterations: int = 6):
    """(the loss of every step, the trained trunk)."""
    torch.manual_seed(0)
    seen = []
    loss_funcs["metric_loss"].register_forward_hook(lambda module, inputs, output: seen.append(float(output.detach())))
    trunk = torch.nn.Linear(DIM, EMBEDDING)
    optimizers = {"trunk_optimizer": torch.optim.SGD(trunk.parameters(), lr=0.05),
                  "metric_loss_optimizer": torch.optim.SGD(loss_parameters, lr=0.05)}
    trainer = trainers.MetricLossOnly(
        models={"trunk": trunk}, optimizers=optimizers, batch_size=16, loss_funcs=loss_funcs, dataset=Blobs(1),
        data_device=torch.device("cpu"), dataloader_num_workers=0, iterations_per_epoch=iterations,
    )
    trainer.train(num_epochs=1)
    assert len(seen) == iterations
    return seen, trunk


def test_metric_loss_only_trains_each_loss_with_and_without_see():
    for loss_cls in (see_cuda.ProxyAnchorLoss, see_cuda.ProxyNCALoss, see_cuda.NormalizedSoftmaxLoss,
                     see_cuda.CosFaceLoss, see_cuda.ArcFaceLoss):
        for expansion in (None, see_cuda.SphericalExpansion(n_expansion=3, ratio=0.5)):
            loss_fn = loss_cls(CLASSES, EMBEDDING, expansion=expansion)
            before = [p.detach().clone() for p in loss_fn.parameters()]
            losses, _ = train({"metric_loss": loss_fn}, loss_fn.parameters())
            assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
            assert not all(torch.equal(a, b) for a, b in zip(before, loss_fn.parameters()))


def test_multiple_losses_and_the_tester():
    arcface = see_cuda.ArcFaceLoss(CLASSES, EMBEDDING, expansion=see_cuda.SphericalExpansion(n_expansion=3))
    proxy_anchor = see_cuda.ProxyAnchorLoss(CLASSES, EMBEDDING)
    combined = pml_losses.MultipleLosses([arcface, proxy_anchor], weights=[1.0, 0.5])
    losses, trunk = train({"metric_loss": combined}, [*arcface.parameters(), *proxy_anchor.parameters()],
                          iterations=12)
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
    calculator = accuracy_calculator.AccuracyCalculator(include=("precision_at_1",), k=1)
    tester = testers.GlobalEmbeddingSpaceTester(accuracy_calculator=calculator, dataloader_num_workers=0,
                                                data_device=torch.device("cpu"))
    accuracies = tester.test({"val": Blobs(2)}, 1, trunk)
    # Well-separated blobs after a few steps of the summed losses: the nearest neighbour shares the class.
    assert accuracies["val"]["precision_at_1_level0"] >= 0.9
