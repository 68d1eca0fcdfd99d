"""Per-query retrieval metrics from ranked neighbour matches.

Definitions follow Musgrave et al., "A Metric Learning Reality Check" (ECCV 2020),
as pytorch-metric-learning's AccuracyCalculator computes them. For a query with
R relevant gallery items (same label, the query itself not counted):
- Recall@K: 1 if any of the K nearest neighbours is relevant, else 0.
- R-precision: relevant items among the R nearest, divided by R.
- MAP@R: (1/R) * sum over ranks i <= R of P(i) * rel(i), where P(i) is the
  precision of the i nearest and rel(i) is 1 if the i-th neighbour is relevant.
"""
from __future__ import annotations

import numpy as np


def recall_hits(is_match: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """B x len(ks): whether a relevant item is among the K nearest, per K."""
    first_hit_within = np.cumsum(is_match, 1) > 0
    return np.stack([first_hit_within[:, k - 1] for k in ks], 1)


def precision_at_r(is_match: np.ndarray, num_relevant: np.ndarray):
    """(R-precision, average precision at R) per query; needs R <= neighbours and R >= 1."""
    ranks = np.arange(1, is_match.shape[1] + 1)
    hit_within_r = is_match & (ranks[None, :] <= num_relevant[:, None])
    hits_so_far = np.cumsum(hit_within_r, 1)
    r_precision = hits_so_far[:, -1] / num_relevant
    average_precision = (hits_so_far / ranks * hit_within_r).sum(1) / num_relevant
    return r_precision, average_precision
