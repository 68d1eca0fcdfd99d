"""Embedding networks: a backbone giving features, then a linear embedding head.

`small_cnn` trains from scratch on a CPU. `resnet50` (torchvision) and
`vit_small` (timm, DINO ViT-S/16) are the paper's backbones; they are built only
when their library is importable and local weights are given: nothing is
downloaded at run time.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..data.files import reading


class BackboneUnavailableError(RuntimeError):
    """The backbone's library or its local weights are missing."""


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU stages, each halving the image; global average + max pooling.

    `stem_stride` 2 makes the first convolution strided: a quarter of the compute.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, stem_stride: int = 1):
        super().__init__()
        stages, channels = [], in_channels
        for multiple in (1, 2, 4, 8):
            out = width * multiple
            stride = stem_stride if multiple == 1 else 1
            stages += [nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out
        self.features = nn.Sequential(*stages)
        self.feature_size = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images)
        # Proxy-Anchor's pooling: average plus max of the last feature map.
        return maps.mean((2, 3)) + maps.amax((2, 3))


class EmbeddingNet(nn.Module):
    """backbone -> features -> Linear -> embeddings (not normalised; the loss normalises)."""

    def __init__(self, backbone: nn.Module, feature_size: int, embedding_size: int, in_channels: int, wants_rgb: bool):
        super().__init__()
        self.backbone = backbone
        self.embedding = nn.Linear(feature_size, embedding_size)
        nn.init.kaiming_normal_(self.embedding.weight, mode="fan_out")
        nn.init.zeros_(self.embedding.bias)
        # Grey images (Glyphs) meet RGB backbones by repeating the channel.
        self.repeat_channels = 3 if wants_rgb and in_channels == 1 else 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.repeat_channels > 1:
            images = images.repeat(1, self.repeat_channels, 1, 1)
        return self.embedding(self.backbone(images))


def build_model(backbone: str, embedding_size: int, in_channels: int, cnn_width: int = 32,
                weights: str | None = None, stem_stride: int = 1) -> EmbeddingNet:
    if backbone == "small_cnn":
        net = SmallCNN(in_channels, cnn_width, stem_stride)
        if weights:
            net.load_state_dict(_load_weights(weights, backbone))
        return EmbeddingNet(net, net.feature_size, embedding_size, in_channels, wants_rgb=False)
    if backbone == "resnet50":
        net, size = _resnet50(weights)
    elif backbone == "vit_small":
        net, size = _vit_small(weights)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; choose small_cnn, resnet50 or vit_small")
    return EmbeddingNet(net, size, embedding_size, in_channels, wants_rgb=True)


def _require_weights(weights: str | None, backbone: str) -> str:
    if not weights:
        raise BackboneUnavailableError(
            f"backbone {backbone} needs local pretrained weights: pass --backbone-weights PATH "
            "(a state dict); nothing is downloaded at run time"
        )
    if not os.path.isfile(weights):
        raise BackboneUnavailableError(f"backbone {backbone}: weights file {weights} does not exist")
    return weights


def _load_weights(path: str, backbone: str) -> dict:
    path = _require_weights(path, backbone)
    with reading(path, "pass --backbone-weights a state dict saved with torch.save (a pretraining's backbone.pt "
                       "is written again by deleting it)"):
        state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("backbone", state) if isinstance(state, dict) else state


def _resnet50(weights: str | None):
    try:
        import torchvision
    except ImportError as error:
        raise BackboneUnavailableError(
            "backbone resnet50 needs torchvision, which is not installed (it has no build for this torch); "
            "use --backbone small_cnn"
        ) from error
    state = _load_weights(weights, "resnet50")
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    return net, 2048


def _vit_small(weights: str | None):
    try:
        import timm
    except ImportError as error:
        raise BackboneUnavailableError("backbone vit_small needs timm, which is not installed; "
                                       "use --backbone small_cnn") from error
    state = _load_weights(weights, "vit_small")
    net = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    net.load_state_dict(state, strict=False)
    return net, net.num_features
