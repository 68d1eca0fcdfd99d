"""Exact inner-product nearest neighbours, one block of queries at a time, in torch.

Tie policy: neighbours are ranked by descending inner product (float32, as the
block's matrix product computes it), and equal scores by ascending gallery index,
exactly as a stable sort would. A top-k selection alone does not promise which of
several items tied at the k-th place it returns, so each block fetches one item
more than needed. In the rows where that extra item ties with the k-th one, every
item scoring above the k-th is already among those fetched, and the rest of the k
are the lowest-indexed items at the k-th score: they are looked for, for all such
rows at once, in a prefix of the gallery that widens until it holds enough of them.
A collapsed model (all scores equal) thus costs what distinct scores cost, never a
loop over tied items. Metrics can depend on ties only between items of different
labels; exact duplicates within one label give the same answer under any tie order.
"""
from __future__ import annotations

import torch

# The first prefix searched for tied items is this many times k wide (then 4x wider each round).
FIRST_PREFIX = 2


class InnerProductSearch:
    """An exact inner-product index over `gallery` (N x D float32, rows unit or zero)."""

    def __init__(self, gallery: torch.Tensor):
        self.gallery = gallery
        self.size = gallery.shape[0]

    def search(self, queries: torch.Tensor, k: int, self_indices: torch.Tensor | None = None) -> torch.Tensor:
        """The indices (B x k, int64) of the k best gallery items for each query, best first.

        `self_indices` (B,) gives each query's own row in the gallery; that row is
        excluded by index, never by score, so a duplicate of the query still counts.
        """
        scores = queries @ self.gallery.T
        if self_indices is not None:
            scores[torch.arange(scores.shape[0], device=scores.device), self_indices] = -torch.inf
        fetch = min(k + 1, self.size)
        fetched_scores, fetched = torch.topk(scores, fetch, dim=1, sorted=True)
        top_scores, neighbours = sort_ties_by_index(fetched_scores[:, :k], fetched[:, :k])
        if fetch > k:
            # Where the (k+1)-th item ties with the k-th, which of the items at that
            # score make the top k is the tie rule's to say.
            rows = torch.nonzero(fetched_scores[:, k] == fetched_scores[:, k - 1])[:, 0]
            if rows.numel():
                neighbours[rows] = complete_ties(scores, rows, top_scores[rows], neighbours[rows])
        return neighbours


def sort_ties_by_index(scores: torch.Tensor, indices: torch.Tensor):
    """Each row ordered by descending score, then ascending index."""
    by_index = torch.argsort(indices, dim=1)
    scores, indices = scores.gather(1, by_index), indices.gather(1, by_index)
    by_score = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return scores.gather(1, by_score), indices.gather(1, by_score)


def complete_ties(scores: torch.Tensor, rows: torch.Tensor, top_scores: torch.Tensor,
                  neighbours: torch.Tensor) -> torch.Tensor:
    """The k best of the `rows` of `scores` whose k-th score is tied beyond the k fetched.

    scores: B x N, every score of the block; top_scores, neighbours: len(rows) x k,
    those rows' fetched top k in policy order. The items above the k-th score keep their
    places; the places from the first one at the k-th score on take the
    lowest-indexed items at that score, in ascending index order.
    """
    k, count = neighbours.shape[1], scores.shape[1]
    tie = top_scores[:, k - 1 :]
    first_tied = (top_scores > tie).sum(1)  # the place where the tied items begin
    needed = k - first_tied
    lowest = torch.empty_like(neighbours)
    pending = torch.arange(rows.numel(), device=scores.device)
    width = min(count, FIRST_PREFIX * k)
    while pending.numel():
        at_tie = scores[:, :width].index_select(0, rows[pending]) == tie[pending]  # the prefix only
        found = at_tie.sum(1)
        done = (found >= needed[pending]) | (width == count)
        if bool(done.any()):
            finished = pending[done]
            # The lowest indices at the tie: the largest of (width - 1 - index) among them.
            reversed_index = torch.arange(width - 1, -1, -1, device=scores.device)
            keys = torch.where(at_tie[done], reversed_index, -1)
            lowest[finished] = width - 1 - torch.topk(keys, k, dim=1, sorted=True).values
        pending = pending[~done]
        width = min(count, 4 * width)
    place = torch.arange(k, device=scores.device)
    from_ties = (place - first_tied[:, None]).clamp(min=0)
    return torch.where(place < first_tied[:, None], neighbours, lowest.gather(1, from_ties))
