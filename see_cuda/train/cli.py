"""Command line of `see-train` (`python -m see_cuda.train`): flags map one to one onto TrainConfig."""
from __future__ import annotations

import argparse
from dataclasses import fields

from .config import AMP_DTYPES, BACKBONES, BASE_LOSSES, DATASETS, LOSSES, LR_SCHEDULES, TrainConfig

PROG = "see-train"

CHOICES = {"dataset": DATASETS, "loss": LOSSES, "base_loss": BASE_LOSSES,
           "backbone": BACKBONES, "amp": AMP_DTYPES, "lr_schedule": LR_SCHEDULES,
           "implementation": ("auto", "fused", "reference")}
# One line per flag; --help adds each default.
HELP = {
    "base_loss": "the loss --loss pa (plain) or see (with the expansion) applies to, with its defaults (PML's); "
                 "--alpha and --margin are Proxy-Anchor's",
    "out_dir": "folder of the checkpoint and the metrics; one that holds a run is refused without --resume",
    "dataset": "glyphs renders CJK characters from the Noto fonts; the others read --data-root; folders: your own "
               "images as DATA_ROOT/train/<class>/* and DATA_ROOT/test/<class>/* (other classes than train's)",
    "data_root": "dataset folder (CUB/Cars/SOP/In-Shop/folders); Glyphs renders into ~/.cache/see_cuda/glyphs",
    "glyphs_train_classes": "Glyphs: train on this many characters (None: the protocol's 1,000)",
    "glyphs_test_classes": "Glyphs: test on this many characters (None: the protocol's 1,000)",
    "glyphs_class_pool": "Glyphs: set aside this many training characters and train on --glyphs-train-classes of "
                         "them, so that runs with different class counts share one test set",
    "glyphs_train_faces": "Glyphs: the training faces, comma-separated, e.g. Sans-Regular-JP,Serif-Regular-JP "
                          "(None: the protocol's Sans and Serif, Regular and Bold); never a test face",
    "glyphs_image_size": "Glyphs: image side in pixels (None: the protocol's 64)",
    "image_size": "image data sets: side of the square crop the network sees",
    "loss": "pa: Proxy-Anchor; see: Proxy-Anchor with Spherical Embedding Expansion",
    "implementation": "auto: the fused kernels where this install has them; fused insists; reference: PyTorch",
    "backbone": "small_cnn trains from scratch; resnet50 needs torchvision, vit_small needs timm",
    "backbone_weights": "local state dict for the backbone; nothing is downloaded",
    "embedding_size": "dimension of the embeddings (and of the proxies)",
    "cnn_width": "small_cnn: channels of its first stage (doubled per stage)",
    "cnn_stem_stride": "small_cnn: stride of the first convolution (2: a quarter of the compute)",
    "epochs": "epochs to train; with --resume, more than the run had extends it (see --schedule-epochs)",
    "schedule_epochs": "epochs the learning-rate and SEE schedules span, holding their last values past it (None: "
                       "--epochs; --resume --epochs N keeps the run's)",
    "batch_size": "images per batch, over all processes",
    "m_per_class": "images of each class in a batch",
    "batches_per_epoch": "batches per epoch (None: a pass's worth over the training set)",
    "lr": "AdamW learning rate of the network",
    "proxy_lr": "AdamW learning rate of the proxies",
    "lr_schedule": "constant; cosine: both learning rates decay to ~0 over the epochs; step: both fall to a "
                   "tenth for the last floor(epochs/3) epochs (from epoch ceil(2*epochs/3)+1), so it needs "
                   "--epochs 3 or more",
    "weight_decay": "AdamW weight decay of the network (none on the proxies)",
    "alpha": "Proxy-Anchor's scale α",
    "margin": "Proxy-Anchor's margin δ",
    "n_expansion": "SEE: synthetic points per expanded sample, the simplex's vertices",
    "lam": "SEE: weight λ of the synthetic points' loss",
    "rho_min": "SEE: fraction of the batch expanded at the first epoch",
    "rho_max": "SEE: fraction of the batch expanded at the last epoch",
    "seed": "seed of the weights, the batches and the expansion's draws",
    "amp": "mixed precision on a GPU: fp16 (with a gradient scaler) or bf16",
    "shard_proxies": "under torchrun, each process holds the proxies of C/W classes and their optimizer state "
                     "(see_cuda.sharded); checkpoints hold one file of proxies per process, and --resume needs "
                     "the same number of processes",
    "device": "cpu, cuda or cuda:N",
    "threads": "torch.set_num_threads, >= 1 (None: torch's choice)",
    "workers": "DataLoader worker processes of image data sets",
    "eval_batch_size": "images per batch when evaluating",
    "ks": "K of Recall@K",
    "resume": "continue from OUT_DIR/checkpoint.pt (same result as an uninterrupted run); refused, naming the "
              "flags, when a flag that changes training differs from the checkpoint's (only --out-dir, "
              "--stop-after, --progress, --threads, --workers and --eval-batch-size may change; the expansion's "
              "settings, n, λ and ρ, change nothing a plain run trains)",
    "stop_after": "stop after this epoch; --resume continues",
    "progress": "a progress bar per epoch and a line per epoch",
}
DEBUG_HELP = "show the traceback of an expected failure (a bad flag, a missing file) instead of one line"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, without the usage argparse prints first."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                           description="Train an embedding network with Proxy-Anchor (pa) or SEE (see).")
    defaults = TrainConfig()
    for spec in fields(TrainConfig):
        if spec.name == "extra":
            continue
        flag = "--" + spec.name.replace("_", "-")
        default = getattr(defaults, spec.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=HELP[spec.name])
        elif spec.name == "ks":
            parser.add_argument(flag, type=int, nargs="+", default=list(default), help=HELP[spec.name])
        else:
            parser.add_argument(flag, type=flag_type(spec.name, default), default=default,
                                choices=CHOICES.get(spec.name), help=HELP[spec.name])
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    return parser


def flag_type(name: str, default) -> type:
    """The type of a flag's value: its default's, and for flags without a default, str or int."""
    if default is not None:
        return type(default)
    return str if name in ("data_root", "backbone_weights", "glyphs_train_faces") else int


def parse_config(argv=None) -> TrainConfig:
    config, _ = parse_command(argv)
    return config


def parse_command(argv=None) -> tuple[TrainConfig, bool]:
    """(the TrainConfig of the flags, whether --debug was given)."""
    values = vars(build_parser().parse_args(argv))
    debug = values.pop("debug")
    values["ks"] = tuple(values["ks"])
    return TrainConfig(**values), debug


def main(argv=None) -> None:
    """The command: an expected failure ends it with one line (a flag's names the flag, before any
    training step); --debug shows the traceback instead."""
    from .failures import run_command
    from .run import train

    config, debug = parse_command(argv)
    history = run_command(PROG, lambda: train(config), debug)
    if history:
        last = history[-1]
        print(" ".join(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
                       for key, value in last.items()))
