"""Training of embedding networks with Proxy-Anchor or SEE: `python -m see_cuda.train --help`.

    from see_cuda.train import TrainConfig, train
    history = train(TrainConfig(dataset="glyphs", loss="see", epochs=10, out_dir="runs/see"))

Single process or `torchrun --nproc_per_node N -m see_cuda.train ...` (embeddings
all-gathered before the loss; with `--shard-proxies` each process holds the proxies of
C/N classes, see_cuda.sharded); checkpoints every epoch, exact `--resume`.
"""
from .config import TrainConfig
from .run import train

__all__ = ["TrainConfig", "train"]
