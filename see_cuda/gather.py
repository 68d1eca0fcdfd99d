"""Rows of a table picked by labels that may lie outside it, without a device-side assert.

On CUDA, `table[labels]` with an out-of-range label stops the process with a
device-side assert. When label values were not checked (`check_values=False`),
the fused path indexes through this instead: clamped indices, and a row of NaN
for each invalid label, so that the loss it feeds is NaN (never a finite answer).
"""
from __future__ import annotations

import torch


def valid_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A bool mask: which labels lie in [0, num_classes)."""
    return (labels >= 0) & (labels < num_classes)


def rows_or_nan(table: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """table[labels] where labels are valid, NaN rows where they are not (table: C x D)."""
    num_classes = table.shape[0]
    rows = table.index_select(0, labels.clamp(0, num_classes - 1))
    return rows.masked_fill(~valid_labels(labels, num_classes).unsqueeze(-1), float("nan"))
