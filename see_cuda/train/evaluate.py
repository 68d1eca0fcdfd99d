"""Embedding an evaluation set and scoring it with `see_cuda.evaluation.evaluate_retrieval`."""
from __future__ import annotations

import torch

from ..evaluation import evaluate_retrieval
from .data import EvalSet, eval_batches


@torch.no_grad()
def embed(model: torch.nn.Module, dataset, batch_size: int, device: torch.device):
    was_training = model.training
    model.eval()
    embeddings, labels = [], []
    for images, batch_labels in eval_batches(dataset, batch_size):
        embeddings.append(model(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(batch_labels))
    model.train(was_training)
    return torch.cat(embeddings), torch.cat(labels)


def evaluate(model: torch.nn.Module, eval_set: EvalSet, batch_size: int, device: torch.device, ks) -> dict:
    queries, query_labels = embed(model, eval_set.queries, batch_size, device)
    if eval_set.gallery is None:
        return evaluate_retrieval(queries, query_labels, ks=ks)
    gallery, gallery_labels = embed(model, eval_set.gallery, batch_size, device)
    return evaluate_retrieval(queries, query_labels, ks=ks, gallery_embeddings=gallery, gallery_labels=gallery_labels)
