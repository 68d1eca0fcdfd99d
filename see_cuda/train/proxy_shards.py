"""The proxies of a run trained with --shard-proxies: one file per process per checkpoint.

Each process writes its classes' proxies (the loss module's state) and its optimizer's
state for them (their Adam moments; the network's is in checkpoint.pt, once) to
`proxies-<rank>-of-<world>.epoch-<n>.pt`
before the first process writes checkpoint.pt, which commits epoch n; the files of earlier
epochs are removed only after that. An interruption at any point therefore leaves a
checkpoint.pt whose epoch has every process's file. A resume needs the same number of
processes: each reads the file of its rank. Each file carries a checksum
(see_cuda.train.checksummed), checked on load.
"""
from __future__ import annotations

import contextlib
import glob
import os

from ..data.files import damaged
from . import checksummed
from .optim import merge_state, split_state
from .run_record import ConfigMismatchError

REMEDY = ("delete the run's checkpoint.pt and proxies-*.pt files to train it from the start, or use another output "
          "folder")


def path_of(out_dir: str, rank: int, world: int, epochs_done: int) -> str:
    return os.path.join(out_dir, f"proxies-{rank}-of-{world}.epoch-{epochs_done}.pt")


def layout(world: int) -> dict:
    """What checkpoint.pt records of a sharded run: the number of processes holding the proxies."""
    return {"world_size": world}


def save(out_dir: str, epochs_done: int, rank: int, world: int, loss_fn, optimizer) -> str:
    state = {"epochs_done": epochs_done, "rank": rank, "world_size": world, "loss": loss_fn.state_dict(),
             "optimizer": split_state(optimizer.state_dict())[1]}
    path = path_of(out_dir, rank, world, epochs_done)
    checksummed.save(path, state)
    return path


def check_world(recorded: dict | None, world: int, where: str) -> None:
    """A sharded run resumes only with as many processes as it was trained with."""
    if recorded is None:
        raise ConfigMismatchError(f"{where} holds no proxy shards (it was trained without --shard-proxies)")
    if recorded["world_size"] != world:
        raise ConfigMismatchError(
            f"{where} was trained with its proxies sharded over {recorded['world_size']} processes, each holding its "
            f"classes' proxies and optimizer state; resume it with the same number "
            f"(torchrun --nproc_per_node {recorded['world_size']}), not {world}")


def load(out_dir: str, epochs_done: int, rank: int, world: int, loss_fn, optimizer,
         network_state: dict | None = None) -> None:
    """This process's proxies and the optimizer's state, its proxies' part from this file and the
    network's from `network_state` (checkpoint.pt's); runs saved before the split (None there)
    hold the whole optimizer state in each process's file."""
    path = path_of(out_dir, rank, world, epochs_done)
    if not os.path.isfile(path):
        raise damaged(path, "it is missing, though checkpoint.pt lists its epoch", REMEDY)
    state = checksummed.load(path, REMEDY)
    if not isinstance(state, dict) or (state.get("rank"), state.get("world_size"), state.get("epochs_done")) != (
            rank, world, epochs_done):
        raise damaged(path, f"it does not hold process {rank} of {world} at epoch {epochs_done}", REMEDY)
    loss_fn.load_state_dict(state["loss"])
    optimizer.load_state_dict(state["optimizer"] if network_state is None else merge_state(network_state,
                                                                                           state["optimizer"]))


def remove_other_epochs(out_dir: str, rank: int, world: int, epochs_done: int) -> None:
    """This process's files of any epoch but `epochs_done` (checkpoint.pt now names that one)."""
    keep = path_of(out_dir, rank, world, epochs_done)
    for path in glob.glob(os.path.join(glob.escape(out_dir), f"proxies-{rank}-of-{world}.epoch-*.pt")):
        if path != keep:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
