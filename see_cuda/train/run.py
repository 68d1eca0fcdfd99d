"""`train(config)`: check the flags and the output folder, build everything, then per epoch
train, evaluate, checkpoint and log (the checkpoint first: the metrics never list an epoch
that no checkpoint holds)."""
from __future__ import annotations

import os
import random
import time

import numpy as np
import torch

from . import checkpoint, proxy_shards
from .data import TrainBatches, build_datasets, searchable_items
from .distributed import barrier, broadcast_parameters, distribute_network, init_from_environment, rank_and_world
from .evaluate import evaluate
from .loop import train_one_epoch
from .loss import build_loss
from .metrics_log import write_metrics
from .model import build_model
from .optim import build_optimizer, set_epoch_learning_rates
from .preflight import check_ks_fit, prepare_out_dir, refuse_to_overwrite
from .run_record import keep_the_recorded_schedule, recorded_config
from .startup import startup_line


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def train(config) -> list[dict]:
    """Trains as `config` says; returns the per-epoch history (also in out_dir/metrics.json).

    Every flag is checked before the first training step (FlagError naming it)."""
    config.check()
    if config.threads:
        torch.set_num_threads(config.threads)
    init_from_environment(config.device)
    rank, world = rank_and_world()
    if rank == 0:
        refuse_to_overwrite(config.out_dir, config.resume)
        prepare_out_dir(config.out_dir)
    if config.resume and checkpoint.exists(config.out_dir):
        keep_the_recorded_schedule(config, checkpoint.read(config.out_dir).get("config"))
    device = torch.device(config.device if not config.device.startswith("cuda") or world == 1
                          else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    seed_everything(config.seed)
    train_set, eval_set, channels = build_datasets(config)
    check_ks_fit(config.ks, searchable_items(eval_set), f"the {config.dataset} evaluation set")
    if rank == 0 and config.progress:
        print(startup_line(config, device, train_set, eval_set), flush=True)
    model = build_model(config.backbone, config.embedding_size, channels, config.cnn_width, config.backbone_weights,
                        config.cnn_stem_stride).to(device)
    loss_fn = build_loss(config, len(set(train_set.labels))).to(device)
    network = distribute_network(model, device)  # DDP on several processes; `model` is what is saved
    if not config.shard_proxies:  # sharded, each process's proxies are its own classes'
        broadcast_parameters(loss_fn)
    optimizer = build_optimizer(model, next(loss_fn.parameters()), config.lr, config.proxy_lr, config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    batches = TrainBatches(train_set, config, rank, world)

    start, history = 0, []
    record = recorded_config(config)
    if config.resume and checkpoint.exists(config.out_dir):
        start, history = checkpoint.load(config.out_dir, config, model, loss_fn, optimizer, scaler, batches, rank,
                                         world)
        if rank == 0:  # metrics written before an interruption may lag the checkpoint
            write_metrics(config.out_dir, record, history)
    for epoch in range(start, config.epochs):
        loss_fn.step_epoch(config.schedule_epoch(epoch))
        set_epoch_learning_rates(optimizer, config, epoch)
        began = time.perf_counter()
        row = {"epoch": epoch + 1}
        row.update(train_one_epoch(network, loss_fn, optimizer, scaler, batches, epoch, config, device,
                                   show_progress=config.progress and rank == 0))
        row["train_seconds"] = time.perf_counter() - began
        if config.shard_proxies:  # every process's proxies on disk before checkpoint.pt names the epoch
            proxy_shards.save(config.out_dir, epoch + 1, rank, world, loss_fn, optimizer)
            barrier()
        if rank == 0:
            began = time.perf_counter()
            row.update(evaluate(model, eval_set, config.eval_batch_size, device, config.ks))
            row["eval_seconds"] = time.perf_counter() - began
            history.append(row)
            checkpoint.save(config.out_dir, epoch + 1, model, loss_fn, optimizer, scaler, batches, history, record,
                            proxy_shards.layout(world) if config.shard_proxies else None)
            write_metrics(config.out_dir, record, history)
            if config.progress:
                print(f"epoch {epoch + 1}: loss {row['loss']:.4f} R@1 {row.get('recall@1', float('nan')):.4f} "
                      f"MAP@R {row['map@r']:.4f}", flush=True)
        barrier()
        if config.shard_proxies:
            proxy_shards.remove_other_epochs(config.out_dir, rank, world, epoch + 1)
        if config.stop_after is not None and epoch + 1 >= config.stop_after:
            break
    return history
