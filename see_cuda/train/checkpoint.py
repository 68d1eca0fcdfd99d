"""Checkpoints that make `--resume` exact: weights, optimizer, epoch, every random stream,
and the config the run was trained with (a resume with other training flags is refused).

Written to a temporary file and renamed, so an interruption never leaves half a checkpoint.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .run_record import check_same_training

FILENAME = "checkpoint.pt"


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
         config_record: dict) -> str:
    state = {
        "config": config_record, "epochs_done": epochs_done, "model": model.state_dict(), "loss": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
        "random": random_states(batches, loss_fn), "history": history,
    }
    path = os.path.join(out_dir, FILENAME)
    temporary = f"{path}.{os.getpid()}.tmp"
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def read(out_dir: str) -> dict:
    return torch.load(os.path.join(out_dir, FILENAME), map_location="cpu", weights_only=False)


def check_resumable(out_dir: str, config) -> tuple[int, list[dict]]:
    """(epochs done, history) of out_dir's run; ConfigMismatchError if it was trained with other flags."""
    state = read(out_dir)
    check_same_training(state.get("config"), config, f"the run in {out_dir}")
    return state["epochs_done"], state["history"]


def load(out_dir: str, config, model, loss_fn, optimizer, scaler, batches):
    """(epochs done, history) from out_dir's checkpoint, restoring everything else in place;
    ConfigMismatchError, before anything is restored, if it was trained with other flags."""
    state = read(out_dir)
    check_same_training(state.get("config"), config, f"the run in {out_dir}")
    model.load_state_dict(state["model"])
    loss_fn.load_state_dict(state["loss"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    restore_random_states(state["random"], batches, loss_fn)
    return state["epochs_done"], state["history"]


def exists(out_dir: str) -> bool:
    return os.path.isfile(os.path.join(out_dir, FILENAME))
