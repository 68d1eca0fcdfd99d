"""Checkpoints that make `--resume` exact: weights, optimizer, epoch, every random stream,
and the config the run was trained with (a resume with other training flags is refused).

Written whole or not at all (`see_cuda.data.files.write_atomically`): an interruption or a
full disk leaves the previous checkpoint and no temporary file. Written with a checksum
(see_cuda.train.checksummed): a checkpoint that cannot be read, or whose bytes changed, is a
DamagedFileError naming it.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from ..data.files import damaged
from . import checksummed, proxy_shards
from .optim import split_state
from .run_record import check_same_training

FILENAME = "checkpoint.pt"
REQUIRED_KEYS = ("epochs_done", "model", "loss", "optimizer", "scaler", "random", "history")
REMEDY = ("delete it to train that run from the start (and its metrics.json, which may list epochs it held), "
          "or use another output folder")


def random_states(batches, loss_fn) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "sampler_epoch": batches.sampler.epoch,
        "augmentation": batches.generator.get_state(),
        "loss": loss_fn.generator.get_state(),
    }


def restore_random_states(states: dict, batches, loss_fn) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    batches.sampler.set_epoch(states["sampler_epoch"])
    batches.generator.set_state(states["augmentation"])
    loss_fn.generator.set_state(states["loss"])


def save(out_dir: str, epochs_done: int, model, loss_fn, optimizer, scaler, batches, history,
         config_record: dict, proxy_shards: dict | None = None) -> str:
    """Writes checkpoint.pt. With proxy_shards (a sharded run: proxy_shards.layout), the proxies and
    the optimizer's state for them are in each process's file (see_cuda.train.proxy_shards), written
    before; the optimizer's state for the network is here."""
    state = {
        "config": config_record, "epochs_done": epochs_done, "model": model.state_dict(),
        "loss": None if proxy_shards else loss_fn.state_dict(),
        "optimizer": split_state(optimizer.state_dict())[0] if proxy_shards else optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "random": random_states(batches, loss_fn), "history": history, "proxy_shards": proxy_shards,
    }
    return write_state(out_dir, state)


def write_state(out_dir: str, state: dict) -> str:
    path = os.path.join(out_dir, FILENAME)
    try:
        checksummed.save(path, state)
    except OSError as error:
        raise OSError(error.errno, f"{error.strerror}; free space (or fix the folder) and rerun with --resume to "
                                   f"continue from the last checkpoint") from error
    return path


def read(out_dir: str) -> dict:
    path = os.path.join(out_dir, FILENAME)
    state = checksummed.load(path, REMEDY)
    missing = [key for key in REQUIRED_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise damaged(path, f"no {', '.join(missing)} in it", REMEDY)
    return state


def check_resumable(out_dir: str, config) -> tuple[int, list[dict]]:
    """(epochs done, history) of out_dir's run; ConfigMismatchError if it was trained with other flags."""
    state = read(out_dir)
    check_same_training(state.get("config"), config, f"the run in {out_dir}")
    return state["epochs_done"], state["history"]


def load(out_dir: str, config, model, loss_fn, optimizer, scaler, batches, rank: int = 0, world: int = 1):
    """(epochs done, history) from out_dir's checkpoint, restoring everything else in place;
    ConfigMismatchError, before anything is restored, if it was trained with other flags (or,
    with sharded proxies, over another number of processes)."""
    state = read(out_dir)
    check_same_training(state.get("config"), config, f"the run in {out_dir}")
    if config.shard_proxies:
        proxy_shards.check_world(state.get("proxy_shards"), world, f"the run in {out_dir}")
    model.load_state_dict(state["model"])
    if config.shard_proxies:
        proxy_shards.load(out_dir, state["epochs_done"], rank, world, loss_fn, optimizer, state["optimizer"])
    else:
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    restore_random_states(state["random"], batches, loss_fn)
    return state["epochs_done"], state["history"]


def exists(out_dir: str) -> bool:
    return os.path.isfile(os.path.join(out_dir, FILENAME))
