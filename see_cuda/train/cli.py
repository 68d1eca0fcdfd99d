"""Command line of `python -m see_cuda.train`: flags map one to one onto TrainConfig."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .config import AMP_DTYPES, BACKBONES, BASE_LOSSES, DATASETS, LOSSES, LR_SCHEDULES, FlagError, TrainConfig

PROG = "python -m see_cuda.train"

CHOICES = {"dataset": DATASETS, "loss": LOSSES, "base_loss": BASE_LOSSES,
           "backbone": BACKBONES, "amp": AMP_DTYPES, "lr_schedule": LR_SCHEDULES,
           "implementation": ("auto", "fused", "reference")}
HELP = {
    "base_loss": "the loss --loss pa (plain) or see (with the expansion) applies to, with its defaults (PML's); "
                 "--alpha and --margin are Proxy-Anchor's",
    "data_root": "dataset folder (CUB/Cars/SOP/In-Shop); Glyphs renders into ~/.cache/see_cuda/glyphs",
    "backbone_weights": "local state dict for the backbone; nothing is downloaded",
    "proxy_lr": "AdamW learning rate of the proxies",
    "resume": "continue from OUT_DIR/checkpoint.pt (same result as an uninterrupted run); refused, naming the "
              "flags, when a flag that changes training differs from the checkpoint's (only --out-dir, "
              "--stop-after, --progress, --threads, --workers and --eval-batch-size may change)",
    "lr_schedule": "constant; cosine: both learning rates decay to ~0 over the epochs; step: both fall to a "
                   "tenth for the last floor(epochs/3) epochs (from epoch ceil(2*epochs/3)+1), so it needs "
                   "--epochs 3 or more",
    "glyphs_class_pool": "Glyphs: set aside this many training characters and train on --glyphs-train-classes of "
                         "them, so that runs with different class counts share one test set",
    "glyphs_image_size": "Glyphs: image side in pixels (default: the protocol's 64)",
    "stop_after": "stop after this epoch; --resume continues",
    "threads": "torch.set_num_threads, >= 1 (default: torch's choice)",
    "shard_proxies": "under torchrun, each process holds the proxies of C/W classes and their optimizer state "
                     "(see_cuda.sharded); checkpoints hold one file of proxies per process, and --resume needs "
                     "the same number of processes",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG,
                                     description="Train an embedding network with Proxy-Anchor (pa) or SEE (see).")
    defaults = TrainConfig()
    for spec in fields(TrainConfig):
        if spec.name == "extra":
            continue
        flag = "--" + spec.name.replace("_", "-")
        default = getattr(defaults, spec.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=HELP.get(spec.name))
        elif spec.name == "ks":
            parser.add_argument(flag, type=int, nargs="+", default=list(default), help="K of Recall@K")
        else:
            parser.add_argument(flag, type=flag_type(spec.name, default), default=default,
                                choices=CHOICES.get(spec.name), help=HELP.get(spec.name))
    return parser


def flag_type(name: str, default) -> type:
    """The type of a flag's value: its default's, and for flags without a default, str or int."""
    if default is not None:
        return type(default)
    return str if name in ("data_root", "backbone_weights") else int


def parse_config(argv=None) -> TrainConfig:
    values = vars(build_parser().parse_args(argv))
    values["ks"] = tuple(values["ks"])
    return TrainConfig(**values)


def main(argv=None) -> None:
    """The command: a flag that cannot be trained with ends it, naming the flag, before any training step."""
    from .run import train

    config = parse_config(argv)
    try:
        history = train(config)
    except FlagError as error:
        raise SystemExit(f"{PROG}: error: {error}") from None
    if history:
        last = history[-1]
        print(" ".join(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
                       for key, value in last.items()))
