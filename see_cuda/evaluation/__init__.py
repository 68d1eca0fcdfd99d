"""Retrieval metrics for embeddings: Recall@K, MAP@R and R-precision.

    metrics = evaluate_retrieval(embeddings, labels, ks=(1, 2, 4, 8))
    metrics["recall@1"], metrics["map@r"], metrics["r_precision"]

Single-set protocol (CUB, Cars, SOP): every embedding is a query against all the
others. Query/gallery protocol (In-Shop): pass `gallery_embeddings` and
`gallery_labels`. Search is exact inner product (torch matrix products) on
L2-normalised embeddings, in blocks of queries, on a GPU when torch sees one.
"""
from .retrieval import evaluate_retrieval

__all__ = ["evaluate_retrieval"]
