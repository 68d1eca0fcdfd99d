"""Everything a training run depends on, in one dataclass (saved with the metrics), and the
checks of its values that need no data: each error names the flag at fault."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import torch

from .. import validation
from ..constants import IMPLEMENTATIONS
from ..options import ProxyAnchorSettings, SphericalExpansion

DATASETS = ("glyphs", "cub", "cars", "sop", "inshop", "folders")
LOSSES = ("pa", "see")
# The base loss that --loss pa (plain) or see (with the expansion) applies to (see_cuda.modules).
BASE_LOSSES = ("proxy-anchor", "proxy-nca", "normalized-softmax", "cosface", "arcface")
BACKBONES = ("small_cnn", "resnet50", "vit_small")
AMP_DTYPES = ("none", "fp16", "bf16")
LR_SCHEDULES = ("constant", "cosine", "step")

# Fields holding counts: >= 1 (None allowed where the default is None), or >= 0.
POSITIVE_INTS = ("epochs", "batch_size", "m_per_class", "embedding_size", "cnn_width", "cnn_stem_stride",
                 "image_size", "n_expansion", "eval_batch_size")
OPTIONAL_POSITIVE_INTS = ("glyphs_train_classes", "glyphs_test_classes", "glyphs_class_pool", "glyphs_image_size",
                          "batches_per_epoch", "threads", "stop_after", "schedule_epochs")
NON_NEGATIVE_INTS = ("workers", "seed")
# numpy's legacy seeding, which every run goes through, takes seeds below 2^32.
MAX_SEED = 2**32 - 1
# A Glyphs split without a pool or a class count: the protocol's 1,000 training characters.
GLYPHS_DEFAULT_TRAIN_CLASSES = 1000


FACE_NAME = re.compile(r"(Sans|Serif)-[A-Za-z]+-(JP|KR|SC|TC|HK)")


def glyphs_train_faces(text: str) -> tuple[str, ...]:
    """The faces of --glyphs-train-faces: distinct names like Sans-Regular-JP, none a test face."""
    from ..data.glyphs import DEFAULT_PROTOCOL

    faces = tuple(face.strip() for face in text.split(","))
    malformed = [face for face in faces if not FACE_NAME.fullmatch(face)]
    if malformed:
        raise ValueError(f"--glyphs-train-faces takes comma-separated faces like Sans-Regular-JP,Serif-Bold-JP; "
                         f"got {malformed[0]!r}")
    if len(set(faces)) != len(faces):
        raise ValueError(f"--glyphs-train-faces names a face twice: {text!r}")
    tested = sorted(set(faces) & set(DEFAULT_PROTOCOL.test_faces))
    if tested:
        raise ValueError(f"--glyphs-train-faces must not include a test face ({', '.join(tested)}): the test "
                         "measures faces never trained on")
    return faces


class FlagError(ValueError):
    """A flag's value cannot be trained with; the message names the flag."""


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _named_by_flag(message: str) -> str:
    """The library's message about a loss setting, with each setting named by its flag."""
    return re.sub(r"\b(n_expansion|lam|alpha|margin)\b(?=(=| must| <=))", lambda m: flag(m.group(1)), message)


@dataclass
class TrainConfig:
    out_dir: str = "runs/train"
    dataset: str = "glyphs"
    data_root: str | None = None
    # Glyphs only: fewer classes than the default protocol (a quick subset), None keeps it.
    glyphs_train_classes: int | None = None
    glyphs_test_classes: int | None = None
    # Glyphs only: set aside this many training characters and train on glyphs_train_classes
    # of them, so that runs with different class counts are tested on the same characters.
    glyphs_class_pool: int | None = None
    glyphs_image_size: int | None = None  # Glyphs only: None keeps the protocol's 64 px
    # Glyphs only: the training faces, comma-separated (None: the protocol's four base faces).
    glyphs_train_faces: str | None = None
    image_size: int = 224  # image datasets only
    loss: str = "see"
    base_loss: str = "proxy-anchor"
    implementation: str = "auto"
    backbone: str = "small_cnn"
    backbone_weights: str | None = None  # a local state dict (resnet50 / vit_small / a pretrained small_cnn)
    embedding_size: int = 128
    cnn_width: int = 32
    cnn_stem_stride: int = 1  # 2: a strided first convolution, a quarter of the compute
    epochs: int = 10
    # Epochs the schedules (learning rates, SEE's ρ) span, None: epochs. Past them both hold their
    # last epoch's values: `--resume --epochs N` extends a run with its recorded span.
    schedule_epochs: int | None = None
    batch_size: int = 120
    m_per_class: int = 2
    batches_per_epoch: int | None = None
    lr: float = 1e-3
    proxy_lr: float = 1e-2  # the proxies learn 10x faster than the network (Proxy-Anchor: 100x a 1e-4 rate)
    lr_schedule: str = "constant"  # "cosine": both rates decay to ~0; "step": a tenth over the last epochs // 3
    weight_decay: float = 1e-4
    alpha: float = 32.0
    margin: float = 0.1
    n_expansion: int = 16
    lam: float = 0.2
    rho_min: float = 0.04
    rho_max: float = 0.4
    seed: int = 0
    amp: str = "none"
    # Each process holds the proxies of C/W classes and their optimizer state (see_cuda.sharded).
    shard_proxies: bool = False
    device: str = "cpu"
    threads: int | None = None
    workers: int = 0
    eval_batch_size: int = 256
    ks: tuple = (1, 2, 4, 8)
    resume: bool = False
    # Stop after this epoch (a later --resume continues): splits a run into bounded jobs.
    stop_after: int | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def schedule_span(self) -> int:
        """Epochs the schedules span: schedule_epochs, else epochs."""
        return self.schedule_epochs or self.epochs

    def schedule_epoch(self, epoch: int) -> int:
        """The epoch (0-based) whose schedule values `epoch` trains with: itself, or past the span the last."""
        return min(epoch, self.schedule_span - 1)

    def as_dict(self) -> dict:
        values = asdict(self)
        values["ks"] = list(self.ks)
        return values

    def check(self) -> None:
        """Every check that needs no data: raises FlagError naming the flag, before anything is built."""
        try:
            self._check_values()
        except (TypeError, ValueError) as error:
            raise FlagError(str(error)) from None

    def _check_values(self) -> None:
        for name, value, allowed in (
            ("dataset", self.dataset, DATASETS), ("loss", self.loss, LOSSES),
            ("base_loss", self.base_loss, BASE_LOSSES),
            ("backbone", self.backbone, BACKBONES), ("amp", self.amp, AMP_DTYPES),
            ("lr_schedule", self.lr_schedule, LR_SCHEDULES), ("implementation", self.implementation, IMPLEMENTATIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{flag(name)} must be one of {allowed}, got {value!r}")
        for name in POSITIVE_INTS + OPTIONAL_POSITIVE_INTS + NON_NEGATIVE_INTS:
            value = getattr(self, name)
            if value is not None or name in POSITIVE_INTS + NON_NEGATIVE_INTS:
                validation.check_positive_int(value, flag(name), minimum=0 if name in NON_NEGATIVE_INTS else 1)
        if self.lr_schedule == "step":
            from .optim import first_step_epoch  # optim imports this module

            if first_step_epoch(self.epochs) >= self.epochs:
                raise ValueError(f"--lr-schedule step lowers the rates over the last floor(epochs / 3) epochs: it "
                                 f"needs --epochs 3 or more, got {self.epochs} (the rates would never fall)")
        if self.seed > MAX_SEED:
            raise ValueError(f"--seed must be <= {MAX_SEED}, got {self.seed}")
        validation.check_real(self.lr, "--lr", low=0.0, strict_low=True)
        validation.check_real(self.proxy_lr, "--proxy-lr", low=0.0, strict_low=True)
        validation.check_real(self.weight_decay, "--weight-decay", low=0.0)
        self._check_loss_settings()
        validation.check_real(self.rho_min, "--rho-min", low=0.0, high=1.0)
        validation.check_real(self.rho_max, "--rho-max", low=0.0, high=1.0)
        if self.rho_min > self.rho_max:
            raise ValueError(f"--rho-min ({self.rho_min}) must not exceed --rho-max ({self.rho_max})")
        if not self.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks):
            raise ValueError(f"--ks must hold integers >= 1, got {list(self.ks)}")
        if self.dataset != "glyphs" and not self.data_root:
            raise ValueError(f"--data-root is required for --dataset {self.dataset}")
        if self.amp == "fp16" and self.shard_proxies:
            # Each process would test only its own proxies' gradients for overflow, and the
            # processes' scales (the loss's incoming gradient) could then differ.
            raise ValueError("--amp fp16 cannot be used with --shard-proxies (the gradient scaler's overflow "
                             "checks would differ between processes); use --amp bf16")
        self._check_device()
        if self.batch_size % self.m_per_class:
            raise ValueError(f"--batch-size ({self.batch_size}) must be a multiple of --m-per-class "
                             f"({self.m_per_class})")
        if self.glyphs_class_pool and (self.glyphs_train_classes or 0) > self.glyphs_class_pool:
            raise ValueError(f"--glyphs-train-classes ({self.glyphs_train_classes}) exceeds "
                             f"--glyphs-class-pool ({self.glyphs_class_pool})")
        if self.glyphs_train_faces is not None:
            glyphs_train_faces(self.glyphs_train_faces)
        if self.dataset == "glyphs":
            classes = self.glyphs_train_classes or self.glyphs_class_pool or GLYPHS_DEFAULT_TRAIN_CLASSES
            if self.batch_size // self.m_per_class > classes:
                raise ValueError(f"--batch-size {self.batch_size} / --m-per-class {self.m_per_class} = "
                                 f"{self.batch_size // self.m_per_class} classes per batch, but Glyphs trains on "
                                 f"{classes} (--glyphs-train-classes)")

    def _check_loss_settings(self) -> None:
        """The loss's settings built and checked as the library builds them, its errors named by flag."""
        compute_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.amp, torch.float32)
        try:
            SphericalExpansion(n_expansion=self.n_expansion, lam=self.lam)
            ProxyAnchorSettings(alpha=self.alpha, margin=self.margin).check_dtype(compute_dtype)
            if self.loss == "see":
                validation.check_dim_for_expansion(self.embedding_size, self.n_expansion, dim_name="--embedding-size")
        except (TypeError, ValueError) as error:
            raise type(error)(_named_by_flag(str(error))) from None

    def _check_device(self) -> None:
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--device {self.device}: torch sees no CUDA device (a CPU build, or no GPU)")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ValueError(f"--device {self.device}: only {torch.cuda.device_count()} CUDA device(s)")
        if self.amp != "none" and device.type != "cuda":
            raise ValueError("--amp fp16/bf16 runs on a GPU only (--device cuda)")
        if self.implementation == "fused":
            from .. import backends

            if not backends()[device.type]:
                raise ValueError(f"--implementation fused: this install has no fused {device.type} kernels "
                                 "(use auto or reference)")
