"""`evaluate_retrieval`: the two evaluation protocols of deep metric learning."""
from __future__ import annotations

import numpy as np
import torch

from .inputs import as_embeddings, as_ks, as_labels, check_batch_size, search_device
from .metrics import precision_at_r, recall_hits
from .neighbors import InnerProductSearch

# Upper bound on the scores held at once (queries x gallery items), 64 MB of float32;
# rows whose k-th place is tied need twice that again for their int64 ranking keys.
MAX_SCORE_ENTRIES = 1 << 24


def evaluate_retrieval(
    embeddings,
    labels,
    ks=(1, 2, 4, 8),
    gallery_embeddings=None,
    gallery_labels=None,
    batch_size: int = 1024,
    use_gpu: bool | None = None,
) -> dict[str, float]:
    """Recall@K for each K in `ks`, MAP@R and R-precision of a retrieval task.

    Args:
        embeddings: N x D queries (torch tensor or numpy array, any float dtype,
            finite; values up to the float64 maximum are normalised without overflow).
        labels: N integer class labels.
        ks: the K of Recall@K, an int or a sequence of ints.
        gallery_embeddings, gallery_labels: M x D and M, the separate gallery of the
            query/gallery protocol (In-Shop). Without them every embedding searches
            all the others (single-set protocol), itself excluded by index.
        batch_size: queries searched at once; it bounds memory, never the result.
            It is lowered further when the gallery needs it.
        use_gpu: search on a CUDA device with torch; None (the default): whenever
            torch sees one. True without one is a ValueError.

    Returns:
        {"recall@K": ... for K in ks, "map@r": ..., "r_precision": ...}, fractions
        in [0, 1] averaged over queries. Queries without any relevant gallery item
        are left out of every average (as pytorch-metric-learning does).

    Embeddings are L2-normalised first, so the search ranks by cosine similarity;
    a zero row stays zero and scores 0 against everything. Ties follow the policy
    in `see_cuda.evaluation.neighbors`: equal scores rank by ascending gallery index,
    at the same cost as distinct scores.
    """
    device = search_device(use_gpu)
    queries = as_embeddings(embeddings, "embeddings", device)
    query_labels = as_labels(labels, queries.shape[0], "labels", "embeddings")
    ks = as_ks(ks)
    batch_size = check_batch_size(batch_size)
    single_set = _check_gallery_given(gallery_embeddings, gallery_labels)
    if single_set:
        gallery, gallery_labels = queries, query_labels
    else:
        gallery = as_embeddings(gallery_embeddings, "gallery_embeddings", device)
        gallery_labels = as_labels(gallery_labels, gallery.shape[0], "gallery_labels", "gallery_embeddings")
        if gallery.shape[1] != queries.shape[1]:
            raise ValueError(
                f"gallery_embeddings must have D = {queries.shape[1]} columns like embeddings, got {gallery.shape[1]}"
            )
    searchable = gallery.shape[0] - int(single_set)
    if ks[-1] > searchable:
        raise ValueError(f"ks holds K = {ks[-1]}, but each query can retrieve only {searchable} gallery items")

    num_relevant = _relevant_counts(query_labels, gallery_labels, single_set)
    answerable = np.flatnonzero(num_relevant > 0)
    if answerable.size == 0:
        raise ValueError("no query has a relevant gallery item: no label of labels occurs in the gallery")

    search = InnerProductSearch(gallery)
    k = max(ks[-1], int(num_relevant.max()))
    rows_per_batch = max(1, min(batch_size, MAX_SCORE_ENTRIES // gallery.shape[0]))

    recall_sum = np.zeros(len(ks))
    r_precision_sum = average_precision_sum = 0.0
    for start in range(0, answerable.size, rows_per_batch):
        rows = answerable[start : start + rows_per_batch]
        on_device = torch.from_numpy(rows).to(device)
        neighbours = search.search(queries[on_device], k, on_device if single_set else None).cpu().numpy()
        is_match = gallery_labels[neighbours] == query_labels[rows, None]
        recall_sum += recall_hits(is_match, ks).sum(0)
        r_precision, average_precision = precision_at_r(is_match, num_relevant[rows])
        r_precision_sum += r_precision.sum()
        average_precision_sum += average_precision.sum()

    count = answerable.size
    metrics = {f"recall@{K}": float(hits / count) for K, hits in zip(ks, recall_sum)}
    metrics["map@r"] = float(average_precision_sum / count)
    metrics["r_precision"] = float(r_precision_sum / count)
    return metrics


def _check_gallery_given(gallery_embeddings, gallery_labels) -> bool:
    """True for the single-set protocol; both gallery arguments or neither."""
    if (gallery_embeddings is None) != (gallery_labels is None):
        missing = "gallery_labels" if gallery_labels is None else "gallery_embeddings"
        raise ValueError(f"{missing} must be given together with the other gallery argument")
    return gallery_embeddings is None


def _relevant_counts(query_labels, gallery_labels, single_set: bool) -> np.ndarray:
    """R per query: gallery items sharing its label, the query itself not counted."""
    classes, gallery_counts = np.unique(gallery_labels, return_counts=True)
    position = np.searchsorted(classes, query_labels).clip(max=classes.size - 1)
    counts = np.where(classes[position] == query_labels, gallery_counts[position], 0)
    return counts - 1 if single_set else counts
