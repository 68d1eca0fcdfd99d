"""What the loss adds to a whole training step: a ResNet-50 with random weights, B = 180 at 224 px, bf16 autocast.

One step is the backbone's forward, a 512-d embedding, the loss, the backward
and an AdamW step. The losses: plain Proxy-Anchor (`see_cuda.proxy_anchor_loss`),
SEE as a user calls it (`fused_see_loss`, defaults: one value check), SEE
without the check (`check_values=False`: no host synchronisation), and the
published code's structure (benchmarks/published_see.py: its per-sample loop and
host round-trips). The backbone is torchvision's resnet50(weights=None) when
torchvision imports, else the same architecture written here (nothing is
downloaded either way). Medians of `--repeats` steps after `--warmup`, between
CUDA events; the table goes to standard output. `--device cpu --quick` is the
dry run: a batch of 4 at 32 px, no autocast.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARKS_DIR)  # run from anywhere, import siblings
sys.path.insert(1, os.path.join(os.path.dirname(BENCHMARKS_DIR), "tests"))  # what published_see imports

import torch  # noqa: E402
from torch import nn  # noqa: E402

import see_cuda  # noqa: E402

from measure import elapsed_ms  # noqa: E402
from published_see import published_see_loss  # noqa: E402


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3 convolution), for machines without torchvision."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        out = planes * 4
        self.body = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out))
        self.shortcut = (nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                         if stride != 1 or inplanes != out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet50_features():
    """(the ResNet-50 trunk with global pooling, 2048 outputs, where it came from)."""
    try:
        import torchvision
        model = torchvision.models.resnet50(weights=None)
        model.fc = nn.Identity()
        return model, f"torchvision {torchvision.__version__}"
    except Exception as error:  # any import failure: a CPU/CUDA build mismatch raises more than ImportError
        layers, inplanes = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                            nn.MaxPool2d(3, 2, 1)], 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for b in range(blocks):
                layers.append(Bottleneck(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * 4
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        return nn.Sequential(*layers), f"the ResNet-50 of this file (torchvision: {type(error).__name__})"


def losses(num_classes):
    def plain(e, y, p, g):
        return see_cuda.proxy_anchor_loss(e, y, p)

    def see(e, y, p, g):
        return see_cuda.fused_see_loss(e, y, p, generator=g)

    def see_unchecked(e, y, p, g):
        return see_cuda.fused_see_loss(e, y, p, generator=g, check_values=False)

    def published(e, y, p, g):
        return published_see_loss(e, y, p, generator=g)

    return {"Proxy-Anchor": plain, "SEE": see, "SEE, check_values=False": see_unchecked,
            "published SEE structure": published}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="a tiny step on the CPU, for a dry run")
    parser.add_argument("--classes", type=int, default=11318, help="SOP's class count by default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    device = args.device
    batch, pixels = (4, 32) if args.quick else (180, 224)
    trunk, origin = resnet50_features()
    model = nn.Sequential(trunk, nn.Linear(2048, 512)).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, 3, pixels, pixels, generator=generator, device=device)
    labels = torch.randint(0, args.classes, (batch,), generator=generator, device=device)
    proxies = nn.Parameter(torch.randn(args.classes, 512, generator=generator, device=device))
    optimizer = torch.optim.AdamW([*model.parameters(), proxies], lr=1e-4)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
    print(f"backbone: {origin}; batch {batch} at {pixels} px; {args.classes} classes; "
          f"bf16 autocast: {device == 'cuda'}")
    print("| loss | step ms | over Proxy-Anchor ms |")
    print("| --- | --- | --- |")
    base = None
    for name, loss_fn in losses(args.classes).items():
        def step(loss_fn=loss_fn):
            with autocast:
                embeddings = model(images)
            loss = loss_fn(embeddings.float(), labels, proxies, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(args.warmup):
            step()
        ms = statistics.median(elapsed_ms(step, device) for _ in range(args.repeats))
        base = ms if base is None else base
        print(f"| {name} | {ms:.2f} | {ms - base:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
