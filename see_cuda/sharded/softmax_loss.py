"""A softmax-family loss module with its class vectors sharded over processes: each holds its classes'."""
from __future__ import annotations

import torch
from torch import nn

from .. import validation
from ..loss_settings import ProxyNCASettings
from ..modules.base import ClassVectorLoss
from . import collectives
from .loss import check_layout, refuse_other_layouts
from .partition import class_shard
from .proxies import common_seed, initial_proxies
from .softmax_family import sharded_softmax_family_loss


class ShardedSoftmaxFamilyLoss(ClassVectorLoss):
    """Proxy-NCA, Normalized Softmax, CosFace or ArcFace (plain or with SEE) of the rows of every process,
    each process holding the class vectors of C/W classes.

    On every process of `group` (default: the whole world; without a process group it is one
    process holding every class):

        loss_fn = ShardedSoftmaxFamilyLoss(num_classes, embedding_size, see_cuda.ArcFaceSettings(),
                                           expansion=see_cuda.SphericalExpansion(...))
        loss = loss_fn(embeddings, labels)  # this process's B x D rows, their global labels
        loss.backward()                     # on every process

    `settings` (see_cuda.loss_settings: ProxyNCASettings, NormalizedSoftmaxSettings,
    CosFaceSettings, ArcFaceSettings) picks the loss. The shard is held in the layout of that
    loss's module: `proxies` C_r x D for Proxy-NCA, `W` D x C_r for the others (read in
    place, never copied). The loss is that of one process holding every class vector on all
    processes' rows in rank order (see_cuda.sharded.sharded_softmax_family_loss); the class
    vectors' gradient is complete where it is formed. With `ddp_gradients=True` the rows'
    gradient is multiplied by the world size, for DistributedDataParallel's average.

    Classes are split as see_cuda.sharded.class_shard says (`shard`); the initial vectors are
    the rows of one N(0, 2/C) matrix seeded by `init_seed` (default: drawn on the first process
    and broadcast), the same whatever W (the losses read their direction only). Other keywords:
    see_cuda.modules.base.ClassVectorLoss. The state dict holds the shard and the layout
    (classes, world size, rank): loading a state of another layout is a ValueError.
    """

    def __init__(self, num_classes: int, embedding_size: int, settings, *positional, group=None,
                 init_seed: int | None = None, ddp_gradients: bool = False, **keywords):
        super().__init__(num_classes, embedding_size, positional, settings, **keywords)
        validation.check_bool(ddp_gradients, "ddp_gradients")
        if init_seed is not None:
            validation.check_positive_int(init_seed, "init_seed", minimum=0)
        self.group, self.ddp_gradients = group, ddp_gradients
        self.rank, self.world_size = collectives.rank_and_world(group)
        self.shard = class_shard(num_classes, self.rank, self.world_size)
        self.init_seed = common_seed(group) if init_seed is None else init_seed
        vectors = initial_proxies(self.shard, embedding_size, self.init_seed)
        self.vector_name = "proxies" if isinstance(settings, ProxyNCASettings) else "W"
        self.register_parameter(self.vector_name, nn.Parameter(vectors if self.vector_name == "proxies"
                                                               else vectors.t().contiguous()))
        self.register_load_state_dict_pre_hook(refuse_other_layouts)

    def class_vectors(self) -> torch.Tensor:
        """This process's C_r x D class vectors, a view of the parameter."""
        vectors = getattr(self, self.vector_name)
        return vectors if self.vector_name == "proxies" else vectors.t()

    def _loss(self, embeddings, labels):
        return sharded_softmax_family_loss(
            embeddings, labels, self.class_vectors(), self.num_classes, self.settings, group=self.group,
            ddp_gradients=self.ddp_gradients, return_stats=True, **self.call_keywords())

    def layout(self) -> tuple:
        return (self.num_classes, self.world_size, self.rank, self.shard.offset, self.shard.size)

    def get_extra_state(self) -> torch.Tensor:
        """The layout (5 int64) as one uint8 tensor."""
        return torch.tensor(self.layout(), dtype=torch.int64).view(torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        check_layout(self, state)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, classes=[{self.shard.offset}, {self.shard.stop}), rank={self.rank}, "
                f"world_size={self.world_size}")
