"""Exact inner-product nearest neighbours with faiss, one batch of queries at a time.

Tie policy: neighbours are ranked by descending inner product (float32, as faiss
computes it), and equal scores by ascending gallery index, exactly as a stable
sort would. faiss alone does not promise which of several items tied at the k-th
place it returns, nor their order, so each search fetches one item more than
needed; where that extra item ties with the last one, the row is searched again
wider until the tie is complete, and every row is then re-sorted by (score, index).
Metrics can depend on ties only between items of different labels; exact
duplicates within one label give the same answer under any tie order.
"""
from __future__ import annotations

import faiss
import numpy as np

# faiss's GPU k-selection handles k up to this; larger searches run on the CPU.
GPU_MAX_K = 2048


def faiss_sees_gpu() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class InnerProductSearch:
    """An exact inner-product index over `gallery` (N x D float32, normalised)."""

    def __init__(self, gallery: np.ndarray, use_gpu: bool):
        self.size = gallery.shape[0]
        self._cpu_index = faiss.IndexFlatIP(gallery.shape[1])
        self._cpu_index.add(gallery)
        self._gpu_index = None
        if use_gpu:
            # The resources must outlive the index, hence the attribute.
            self._gpu_resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._cpu_index)

    def search(self, queries: np.ndarray, k: int, self_indices: np.ndarray | None = None):
        """The k best gallery items for each query: (scores, indices), both B x k.

        `self_indices` (B,) gives each query's own row in the gallery; that row is
        excluded by index, never by score, so a duplicate of the query still counts.
        """
        wanted = k if self_indices is None else k + 1
        scores, indices = self._top(queries, min(wanted + 1, self.size))
        if wanted < self.size:
            for row in np.flatnonzero(scores[:, wanted] == scores[:, wanted - 1]):
                row_scores, row_indices = self._complete_tie(queries[row : row + 1], wanted)
                scores[row], indices[row] = row_scores[: wanted + 1], row_indices[: wanted + 1]
        scores, indices = scores[:, :wanted], indices[:, :wanted]
        if self_indices is not None:
            scores, indices = drop_self(scores, indices, self_indices)
        return scores, indices

    def _top(self, queries: np.ndarray, fetch: int):
        on_gpu = self._gpu_index is not None and fetch <= GPU_MAX_K
        scores, indices = (self._gpu_index if on_gpu else self._cpu_index).search(queries, fetch)
        return sort_ties_by_index(scores, indices)

    def _complete_tie(self, query: np.ndarray, wanted: int):
        """One query's ranking, fetched until no item ties with the `wanted`-th one."""
        fetch = wanted + 1
        while True:
            fetch = min(2 * fetch, self.size)
            scores, indices = self._top(query, fetch)
            if fetch == self.size or scores[0, -1] < scores[0, wanted - 1]:
                return scores[0], indices[0]


def sort_ties_by_index(scores: np.ndarray, indices: np.ndarray):
    """Each row ordered by descending score, then ascending index."""
    order = np.lexsort((indices, -scores), axis=-1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(indices, order, 1)


def drop_self(scores: np.ndarray, indices: np.ndarray, self_indices: np.ndarray):
    """Removes one entry per row: the query itself, or the last one when it is absent.

    The query is absent when k + 1 items of lower index tie with it; dropping the
    last then keeps the k best under the tie policy.
    """
    removed = indices == self_indices[:, None]
    removed[~removed.any(1), -1] = True
    kept = ~removed
    k = indices.shape[1] - 1
    return scores[kept].reshape(-1, k), indices[kept].reshape(-1, k)
