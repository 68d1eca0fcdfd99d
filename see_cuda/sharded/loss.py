"""SEEProxyAnchorLoss with its proxies sharded over processes: each holds the proxies of its classes."""
from __future__ import annotations

import torch

from .. import validation
from ..losses import SEEProxyAnchorLoss
from ..share import chunk_budget
from . import collectives
from .functional import sharded_see_loss_with_options
from .partition import class_shard
from .proxies import common_seed, initial_proxies

_LAYOUT_FIELDS = ("num_classes", "world_size", "rank", "class_offset", "num_local_classes")
_LAYOUT_BYTES = 8 * len(_LAYOUT_FIELDS)


class ShardedSEEProxyAnchorLoss(SEEProxyAnchorLoss):
    """The SEE Proxy-Anchor loss of the rows of every process, each process holding C/W of the proxies.

    On every process of `group` (default: the whole world, after
    torch.distributed.init_process_group; without a process group it is one
    process holding all classes):

        loss_fn = ShardedSEEProxyAnchorLoss(num_classes, embedding_size)
        loss = loss_fn(embeddings, labels)  # this process's B x D rows, their global labels
        loss.backward()                     # on every process

    The loss is that of one process holding every proxy on all processes'
    rows concatenated in rank order (the same value everywhere). Each process's
    embeddings get the full gradient of their rows; its proxies, and so their
    optimizer state, are its own and their gradient is complete where it is
    formed (never communicated). A network weight's gradient is then the
    share of this process's rows, to be summed over the processes; with
    `ddp_gradients=True` the rows' gradient is multiplied by the world size,
    so that DistributedDataParallel's average over the processes is the
    gradient of one process (the loss value and the proxies' gradient are the
    same either way).

    Classes are split into contiguous ranges in rank order, the first
    C mod W processes holding one more (see_cuda.sharded.class_partition);
    `shard` says which this process holds, `proxies` is its C_r x D shard.
    The initial proxies are rows of one matrix (see_cuda.sharded.proxies),
    whatever W, seeded by `init_seed` (default: a seed drawn on the first
    process and broadcast). `chunk_bytes` bounds the similarity matrix of the
    share (see_cuda.share). The other arguments are
    SEEProxyAnchorLoss's; the expansion's seed is drawn from the first
    process's `generator`. The state dict holds the shard, the schedule's
    epoch and the generator's state, and the layout (classes, world size,
    rank): loading a state of another layout is a ValueError.
    """

    def __init__(self, num_classes: int, embedding_size: int, group=None, chunk_bytes: int | None = None,
                 init_seed: int | None = None, ddp_gradients: bool = False, **options):
        rank, world = collectives.rank_and_world(group)
        validation.check_bool(ddp_gradients, "ddp_gradients")
        self.ddp_gradients = ddp_gradients
        if init_seed is not None:
            validation.check_positive_int(init_seed, "init_seed", minimum=0)
        # Set before the parent's __init__, which builds the proxies through initial_proxies().
        self.group, self.rank, self.world_size = group, rank, world
        self.shard = class_shard(num_classes, rank, world)
        self.chunk_bytes = chunk_budget(chunk_bytes)
        self.init_seed = common_seed(group) if init_seed is None else init_seed
        super().__init__(num_classes, embedding_size, **options)
        self.register_load_state_dict_pre_hook(refuse_other_layouts)

    def initial_proxies(self) -> torch.Tensor:
        return initial_proxies(self.shard, self.embedding_size, self.init_seed)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, self.last_stats = sharded_see_loss_with_options(
            embeddings, labels, self.proxies, self.num_classes, self.options, self.group, self.generator, None,
            self.implementation, self.check_values, self.chunk_bytes, self.ddp_gradients,
        )
        return loss

    def layout(self) -> tuple:
        return (self.num_classes, self.world_size, self.rank, self.shard.offset, self.shard.size)

    def get_extra_state(self) -> torch.Tensor:
        """The layout (5 int64), then SEEProxyAnchorLoss's extra state, as one uint8 tensor."""
        layout = torch.tensor(self.layout(), dtype=torch.int64).view(torch.uint8)
        return torch.cat([layout, super().get_extra_state()])

    def set_extra_state(self, state: torch.Tensor) -> None:
        check_layout(self, state)
        super().set_extra_state(state.cpu()[_LAYOUT_BYTES:])

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, classes=[{self.shard.offset}, {self.shard.stop}), rank={self.rank}, "
                f"world_size={self.world_size}")


def check_layout(module: ShardedSEEProxyAnchorLoss, state: torch.Tensor) -> None:
    saved = tuple(state.cpu()[:_LAYOUT_BYTES].clone().view(torch.int64).tolist())
    if saved != module.layout():
        described = dict(zip(_LAYOUT_FIELDS, saved))
        raise ValueError(
            f"this state holds the proxies of classes [{described['class_offset']}, "
            f"{described['class_offset'] + described['num_local_classes']}) of {described['num_classes']}, "
            f"process {described['rank']} of {described['world_size']}; this module holds classes "
            f"[{module.shard.offset}, {module.shard.stop}) of {module.num_classes}, process {module.rank} of "
            f"{module.world_size}: load it in a run of the same number of processes and classes, each process "
            "its own rank's state")


def refuse_other_layouts(module, state_dict, prefix, *_):
    # Before anything is copied: a refused state leaves the module as it was.
    state = state_dict.get(prefix + "_extra_state")
    if isinstance(state, torch.Tensor):
        check_layout(module, state)
