"""Classification pretraining of the small CNN on CJK ideographs the retrieval split never uses.

The offline stand-in for the paper's ImageNet-pretrained backbones: cross-entropy
over characters disjoint from the Glyphs train and test classes, drawn in the
retrieval training faces and two middle weights (never a test face), then the backbone's
weights are saved for `--backbone-weights`.
"""
from __future__ import annotations

import json
import os
import time

import torch
from torch import nn
from tqdm import tqdm

from ..data.glyphs import DEFAULT_PROTOCOL, Glyphs, GlyphsProtocol
from .metrics_log import write_atomically
from .model import SmallCNN

# The retrieval training faces plus two middle weights; never a retrieval test face.
PRETRAIN_FACES = DEFAULT_PROTOCOL.train_faces + ("Sans-Medium-JP", "Serif-SemiBold-JP")
assert not set(PRETRAIN_FACES) & set(DEFAULT_PROTOCOL.test_faces)


class DisjointGlyphs:
    """Glyphs of `protocol`'s train split without the characters of `excluded`, relabelled 0..K-1."""

    def __init__(self, protocol: GlyphsProtocol, excluded: set[str]):
        self.glyphs = Glyphs("train", protocol)
        kept = [label for label, character in enumerate(self.glyphs.characters) if character not in excluded]
        self.characters = "".join(self.glyphs.characters[label] for label in kept)
        self.num_classes = len(kept)
        relabel = torch.full((self.glyphs.num_classes,), -1, dtype=torch.int64)
        relabel[torch.tensor(kept)] = torch.arange(len(kept))
        self.relabel = relabel
        self.indices = torch.tensor([i for i, label in enumerate(self.glyphs.labels) if relabel[label] >= 0])

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, positions, generator=None):
        images, labels = self.glyphs.batch(self.indices[positions], generator)
        return images, self.relabel[labels]


def retrieval_characters(protocol: GlyphsProtocol = DEFAULT_PROTOCOL) -> set[str]:
    return set(Glyphs("train", protocol, augment=False).characters) | set(Glyphs("test", protocol).characters)


def pretrain_backbone(out_path: str, num_characters: int = 560, epochs: int = 12, width: int = 16,
                      batch_size: int = 64, lr: float = 3e-3, seed: int = 0, progress: bool = True) -> dict:
    """Trains SmallCNN + a linear classifier; saves {"backbone": state_dict} to out_path and returns a summary."""
    began = time.perf_counter()
    torch.manual_seed(seed)
    protocol = GlyphsProtocol(train_faces=PRETRAIN_FACES, test_faces=PRETRAIN_FACES[:1],
                              num_train_classes=num_characters, num_test_classes=1, split_seed=seed + 101)
    data = DisjointGlyphs(protocol, retrieval_characters())
    backbone = SmallCNN(1, width)
    classifier = nn.Linear(backbone.feature_size, data.num_classes)
    optimizer = torch.optim.AdamW(list(backbone.parameters()) + list(classifier.parameters()), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed + 7)
    steps_per_epoch = len(data) // batch_size
    history = []
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        correct = total = 0
        for step in tqdm(range(steps_per_epoch), desc=f"pretrain {epoch + 1}/{epochs}", disable=not progress, leave=False):
            images, labels = data.batch(order[step * batch_size:(step + 1) * batch_size], generator)
            logits = classifier(backbone(images))
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        history.append({"epoch": epoch + 1, "train_accuracy": correct / max(total, 1)})
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    temporary = f"{out_path}.{os.getpid()}.tmp"
    torch.save({"backbone": backbone.state_dict()}, temporary)
    os.replace(temporary, out_path)
    summary = {"characters": data.num_classes, "images": len(data), "faces": list(PRETRAIN_FACES),
               "excluded_retrieval_characters": True, "epochs": epochs, "width": width, "history": history,
               "wall_seconds": time.perf_counter() - began}
    write_atomically(os.path.splitext(out_path)[0] + ".json", json.dumps(summary, indent=1))
    return summary
