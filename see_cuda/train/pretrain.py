"""Classification pretraining of the small CNN on CJK ideographs the retrieval split never uses.

The offline stand-in for the paper's ImageNet-pretrained backbones: cross-entropy
over characters disjoint from the Glyphs train and test classes, drawn in the
retrieval protocol's training faces and two middle weights (never a test face), then the backbone's
weights are saved for `--backbone-weights`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import torch
from torch import nn
from tqdm import tqdm

from ..data.files import write_atomically, write_text_atomically
from ..data.glyphs import DEFAULT_PROTOCOL, Glyphs, GlyphsProtocol
from .glyph_classes import GlyphClasses
from .model import SmallCNN

# Added to the retrieval training faces for pretraining; never a retrieval test face.
MIDDLE_WEIGHTS = ("Sans-Medium-JP", "Serif-SemiBold-JP")
assert not set(MIDDLE_WEIGHTS) & set(DEFAULT_PROTOCOL.test_faces)


def pretrain_faces(retrieval: GlyphsProtocol) -> tuple[str, ...]:
    """The retrieval protocol's training faces and the two middle weights (the default protocol's: its
    four base faces, Sans Medium and Serif SemiBold)."""
    return retrieval.train_faces + tuple(face for face in MIDDLE_WEIGHTS if face not in retrieval.train_faces)


@dataclasses.dataclass(frozen=True)
class PretrainSettings:
    """Everything the pretrained weights depend on (recorded beside them)."""
    characters_drawn: int = 560  # drawn before the retrieval characters are removed
    epochs: int = 12
    width: int = 16
    stem_stride: int = 1
    image_size: int = 64
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


def disjoint_glyphs(protocol: GlyphsProtocol, excluded: set[str]) -> GlyphClasses:
    """`protocol`'s training images without the characters of `excluded`, relabelled 0..K-1."""
    glyphs = Glyphs("train", protocol)
    kept = [label for label, character in enumerate(glyphs.characters) if character not in excluded]
    return GlyphClasses(glyphs, kept)


def retrieval_characters(protocol: GlyphsProtocol = DEFAULT_PROTOCOL) -> set[str]:
    return set(Glyphs("train", protocol, augment=False).characters) | set(Glyphs("test", protocol).characters)


def pretrain_backbone(out_path: str, settings: PretrainSettings = PretrainSettings(),
                      retrieval: GlyphsProtocol = DEFAULT_PROTOCOL, progress: bool = True) -> dict:
    """Trains SmallCNN + a linear classifier on characters outside `retrieval`'s split; saves
    {"backbone": state_dict} to out_path and a summary (with `settings`) beside it, as .json."""
    began = time.perf_counter()
    s = settings
    torch.manual_seed(s.seed)
    faces = pretrain_faces(retrieval)
    protocol = GlyphsProtocol(train_faces=faces, test_faces=faces[:1],
                              num_train_classes=s.characters_drawn, num_test_classes=1, image_size=s.image_size,
                              split_seed=s.seed + 101)
    data = disjoint_glyphs(protocol, retrieval_characters(retrieval))
    backbone = SmallCNN(1, s.width, s.stem_stride)
    classifier = nn.Linear(backbone.feature_size, data.num_classes)
    optimizer = torch.optim.AdamW(list(backbone.parameters()) + list(classifier.parameters()), lr=s.lr,
                                  weight_decay=1e-4)
    generator = torch.Generator().manual_seed(s.seed + 7)
    steps_per_epoch = len(data) // s.batch_size
    history = []
    for epoch in range(s.epochs):
        order = torch.randperm(len(data), generator=generator)
        correct = total = 0
        for step in tqdm(range(steps_per_epoch), desc=f"pretrain {epoch + 1}/{s.epochs}", disable=not progress,
                         leave=False):
            images, labels = data.batch(order[step * s.batch_size:(step + 1) * s.batch_size], generator)
            logits = classifier(backbone(images))
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
        history.append({"epoch": epoch + 1, "train_accuracy": correct / max(total, 1),
                        "seconds": time.perf_counter() - began})
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    write_atomically(out_path, lambda handle: torch.save({"backbone": backbone.state_dict()}, handle))
    summary = {"settings": dataclasses.asdict(s), "retrieval_protocol": repr(retrieval),
               "characters": data.num_classes, "images": len(data), "faces": list(faces),
               "excluded_retrieval_characters": True, "epochs": s.epochs, "width": s.width, "history": history,
               "wall_seconds": time.perf_counter() - began}
    write_text_atomically(os.path.splitext(out_path)[0] + ".json", json.dumps(summary, indent=1))
    return summary
