"""Everything a training run depends on, in one dataclass (saved with the metrics)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

DATASETS = ("glyphs", "cub", "cars", "sop", "inshop")
LOSSES = ("pa", "see")
BACKBONES = ("small_cnn", "resnet50", "vit_small")
AMP_DTYPES = ("none", "fp16", "bf16")
LR_SCHEDULES = ("constant", "cosine")


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
    image_size: int = 224  # image datasets only
    loss: str = "see"
    implementation: str = "auto"
    backbone: str = "small_cnn"
    backbone_weights: str | None = None  # a local state dict (resnet50 / vit_small / a pretrained small_cnn)
    embedding_size: int = 128
    cnn_width: int = 32
    cnn_stem_stride: int = 1  # 2: a strided first convolution, a quarter of the compute
    epochs: int = 10
    batch_size: int = 120
    m_per_class: int = 2
    batches_per_epoch: int | None = None
    lr: float = 1e-3
    proxy_lr: float = 1e-2  # the proxies learn 10x faster than the network (Proxy-Anchor: 100x a 1e-4 rate)
    lr_schedule: str = "constant"  # or "cosine": both rates decay to ~0 over the epochs
    weight_decay: float = 1e-4
    alpha: float = 32.0
    margin: float = 0.1
    n_expansion: int = 16
    lam: float = 0.2
    rho_min: float = 0.04
    rho_max: float = 0.4
    seed: int = 0
    amp: str = "none"
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

    def as_dict(self) -> dict:
        values = asdict(self)
        values["ks"] = list(self.ks)
        return values

    def check(self) -> None:
        for name, value, allowed in (
            ("dataset", self.dataset, DATASETS), ("loss", self.loss, LOSSES),
            ("backbone", self.backbone, BACKBONES), ("amp", self.amp, AMP_DTYPES),
            ("lr_schedule", self.lr_schedule, LR_SCHEDULES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.dataset != "glyphs" and not self.data_root:
            raise ValueError(f"--data-root is required for --dataset {self.dataset}")
        if self.amp != "none" and not self.device.startswith("cuda"):
            raise ValueError("--amp fp16/bf16 runs on a GPU only (--device cuda)")
        if self.batch_size % self.m_per_class:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of m_per_class ({self.m_per_class})")
        if self.glyphs_class_pool and (self.glyphs_train_classes or 0) > self.glyphs_class_pool:
            raise ValueError(f"--glyphs-train-classes ({self.glyphs_train_classes}) exceeds "
                             f"--glyphs-class-pool ({self.glyphs_class_pool})")
        if self.loss == "see" and self.embedding_size < self.n_expansion + 1:
            raise ValueError(f"SEE needs embedding_size >= n_expansion + 1 = {self.n_expansion + 1}")
