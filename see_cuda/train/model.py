"""Embedding networks: a backbone giving features, then a linear embedding head.

`small_cnn` trains from scratch on a CPU. `resnet50` (torchvision) and
`vit_small` (timm, DINO ViT-S/16) are the paper's backbones; they are built
when their library imports (an error says why it does not), from local weights
when given and otherwise from random weights, with a warning: nothing is
downloaded at run time.
"""
from __future__ import annotations

import importlib
import os
import warnings

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


def _load_weights(path: str, backbone: str) -> dict:
    if not os.path.isfile(path):
        raise BackboneUnavailableError(f"backbone {backbone}: weights file {path} does not exist")
    with reading(path, "pass --backbone-weights a state dict saved with torch.save (a pretraining's backbone.pt "
                       "is written again by deleting it)"):
        state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("backbone", state) if isinstance(state, dict) else state


def _import_backbone_library(name: str, backbone: str):
    """The library a backbone needs, or a BackboneUnavailableError that says why it does not import.

    A library can be installed yet fail to import: torchvision's wheel for one torch build (a CUDA
    one, say) beside another (the CPU one) stops with "operator torchvision::nms does not exist".
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name != name:
            reason = f"it is installed but needs {error.name}, which is not"
        else:
            reason = f"it is not installed (pip install {name}, the build made for torch {torch.__version__})"
    except Exception as error:  # installed, but built for another torch (or broken)
        first_line = (str(error).splitlines() or [""])[0]
        reason = (f"it is installed but does not import beside torch {torch.__version__} ({type(error).__name__}: "
                  f"{first_line}); install the {name} build made for this torch")
    raise BackboneUnavailableError(f"backbone {backbone} needs {name}: {reason}; or use --backbone small_cnn")


def _pretrained_state(weights: str | None, backbone: str) -> dict | None:
    """The weights file's state dict; without a file, None and a warning: the backbone starts from random
    weights (nothing is downloaded)."""
    if not weights:
        warnings.warn(f"backbone {backbone} starts from random weights: no --backbone-weights file was given "
                      "(nothing is downloaded), so expect results far below a pretrained backbone's",
                      stacklevel=3)
        return None
    return _load_weights(weights, backbone)


def _resnet50(weights: str | None):
    torchvision = _import_backbone_library("torchvision", "resnet50")
    state = _pretrained_state(weights, "resnet50")
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    if state is not None:
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    return net, 2048


def _vit_small(weights: str | None):
    timm = _import_backbone_library("timm", "vit_small")
    state = _pretrained_state(weights, "vit_small")
    net = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    if state is not None:
        net.load_state_dict(state, strict=False)
    return net, net.num_features
