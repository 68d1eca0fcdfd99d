"""What every loss module of the library shares: PML's calling conventions, the expansion and its schedule.

A loss module is `Loss(num_classes, embedding_size, *, <its settings>, expansion=None, ...)`
with its class vectors as a parameter under PML's name and shape, so that a
pytorch-metric-learning state dict loads into it strictly and its state dict
loads back into PML. It is called as PML calls a loss,
`loss(embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None)`,
and refuses, with a message, what it cannot honour: a miner's tuples,
reference embeddings, PML's reducers, distances and regularizers, and
positional settings (PML's `(C, D, margin, alpha)` must not be misread).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import validation
from ..options import SphericalExpansion
from ..selection import fraction_schedule, threshold_schedule
from .schedule_warnings import ScheduleWarnings

# PML's keyword arguments that these modules do not take, and why.
PML_KEYWORDS = {
    "reducer": "the loss is the mean over the batch (PML's default MeanReducer) and nothing else",
    "distance": "the loss's similarity is fixed (docs/method.md)",
    "weight_regularizer": "add a regularizer of the class vectors to the loss yourself",
    "weight_reg_weight": "add a regularizer of the class vectors to the loss yourself",
    "embedding_regularizer": "add a regularizer of the embeddings to the loss yourself",
    "embedding_reg_weight": "add a regularizer of the embeddings to the loss yourself",
    "weight_init_func": "initialise the parameter in place after construction (e.g. torch.nn.init on loss.W)",
    "collect_stats": "the statistics of the last call are in loss.last_stats",
}


def refuse_pml_arguments(loss_name: str, positional: tuple, keywords: dict) -> None:
    """TypeError for settings given by position or for PML keywords this module does not take."""
    if positional:
        raise TypeError(f"{loss_name} takes its settings after (num_classes, embedding_size) by keyword only, "
                        f"got {len(positional)} more positional argument(s) {positional!r}; e.g. "
                        f"{loss_name}(num_classes, embedding_size, margin=...)")
    for name in keywords:
        if name in PML_KEYWORDS:
            raise TypeError(f"{loss_name} does not take pytorch-metric-learning's {name!r}: {PML_KEYWORDS[name]}")
    if keywords:
        raise TypeError(f"{loss_name} got unexpected keyword argument(s) {sorted(keywords)}")


def refuse_forward_extras(indices_tuple, ref_emb, ref_labels) -> None:
    """ValueError for the arguments of PML's forward that these losses cannot honour (None is accepted)."""
    if indices_tuple is not None:
        raise ValueError("indices_tuple is not supported: a proxy loss scores every row against every class, so a "
                         "miner's pairs or triplets have nothing to select; use the loss without a miner")
    if ref_emb is not None or ref_labels is not None:
        raise ValueError("ref_emb and ref_labels are not supported: a proxy loss scores the embeddings against its "
                         "class vectors, not against reference embeddings")


class ClassVectorLoss(nn.Module):
    """The base of the loss modules: a subclass sets its parameter and implements `_loss(embeddings, labels)`.

    expansion: a SphericalExpansion, or None for the plain loss.
    num_epochs: None (the default) uses the expansion as given; an int E
        drives its ratio (fraction mode) or threshold (threshold mode) by the
        schedules of docs/method.md §2 over E epochs, from rho_min/rho_max or
        tau_min/tau_max/tau_lower_bound: call `step_epoch(epoch)` at the start
        of each epoch. The module warns once if training has seen an epoch's
        worth of steps (steps_per_epoch forward calls; without it, as many
        rows as classes, the fewest an epoch can hold) with step_epoch never
        called, and once when the epoch passes num_epochs (the schedule then
        falls again).
    generator: draws of the random frames (torch's default generator without one).
    implementation, check_values, chunk_bytes: as in see_cuda.fused_see_loss.

    The schedule's state is not in the state dict (which holds PML's
    parameter alone): `schedule_state()` and `load_schedule_state(state)` carry it.
    """

    def __init__(self, num_classes: int, embedding_size: int, positional: tuple, settings, *,
                 expansion: SphericalExpansion | None = None, num_epochs: int | None = None,
                 rho_min: float = 0.04, rho_max: float = 0.4, tau_min: float = 0.5, tau_max: float = 0.9,
                 tau_lower_bound: float = 0.0, steps_per_epoch: int | None = None,
                 generator: torch.Generator | None = None, implementation: str = "auto", check_values: bool = True,
                 chunk_bytes: int | None = None, **pml_keywords):
        super().__init__()
        refuse_pml_arguments(type(self).__name__, positional, pml_keywords)
        validation.check_positive_int(num_classes, "num_classes")
        validation.check_positive_int(embedding_size, "embedding_size")
        if expansion is not None and not isinstance(expansion, SphericalExpansion):
            raise TypeError(f"expansion must be a see_cuda.SphericalExpansion or None, got {type(expansion).__name__}")
        if expansion is not None and expansion.expands:
            validation.check_dim_for_expansion(embedding_size, expansion.n_expansion)
        if num_epochs is not None:
            validation.check_positive_int(num_epochs, "num_epochs")
        if steps_per_epoch is not None:
            validation.check_positive_int(steps_per_epoch, "steps_per_epoch")
        for value, name in ((rho_min, "rho_min"), (rho_max, "rho_max")):
            validation.check_real(value, name, low=0.0, high=1.0)
        for value, name in ((tau_min, "tau_min"), (tau_max, "tau_max"), (tau_lower_bound, "tau_lower_bound")):
            validation.check_real(value, name)
        validation.check_implementation(implementation)
        validation.check_bool(check_values, "check_values")
        validation.check_chunk_bytes(chunk_bytes)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.num_classes, self.embedding_size, self.settings = num_classes, embedding_size, settings
        self.num_epochs, self.steps_per_epoch = num_epochs, steps_per_epoch
        self.rho_min, self.rho_max = rho_min, rho_max
        self.tau_min, self.tau_max, self.tau_lower_bound = tau_min, tau_max, tau_lower_bound
        self.generator, self.implementation = generator, implementation
        self.check_values, self.chunk_bytes = check_values, chunk_bytes
        self.given_expansion = expansion
        self.epoch = 0
        self.schedule_warnings = ScheduleWarnings(type(self).__name__, num_classes, steps_per_epoch)
        self.expansion = self._scheduled(expansion)
        self.last_stats = None

    # ------------------------------------------------------------ the schedule (docs/method.md §2)
    @property
    def scheduled(self) -> bool:
        """Whether step_epoch drives the expansion (num_epochs given, and an expansion that expands)."""
        return self.num_epochs is not None and self.given_expansion is not None and self.given_expansion.expands

    def _scheduled(self, expansion):
        if not self.scheduled:
            return expansion
        ratio = fraction_schedule(self.epoch, self.num_epochs, self.rho_min, self.rho_max)
        threshold = threshold_schedule(self.epoch, self.num_epochs, self.tau_min, self.tau_max, self.tau_lower_bound)
        return expansion.replace(ratio=ratio, threshold=threshold)

    def step_epoch(self, epoch: int | None = None) -> None:
        """Set the schedule to `epoch` (or advance it by one); warns once when it passes num_epochs."""
        if epoch is not None:
            validation.check_real(epoch, "epoch", low=0.0)
        self.epoch = self.epoch + 1 if epoch is None else epoch
        if self.scheduled:
            self.schedule_warnings.set_epoch(self.epoch, self.num_epochs)
        self.expansion = self._scheduled(self.given_expansion)

    def schedule_state(self) -> dict:
        """The epoch and the generator's state: what a checkpoint needs beside state_dict() to continue."""
        state = {"epoch": self.epoch}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_schedule_state(self, state: dict) -> None:
        self.step_epoch(state["epoch"])
        if "generator" in state:
            if self.generator is None:
                raise ValueError("the state holds a generator's state but this module has no generator")
            self.generator.set_state(state["generator"])

    # ------------------------------------------------------------ PML's calling convention
    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, indices_tuple=None, ref_emb=None,
                ref_labels=None) -> torch.Tensor:
        refuse_forward_extras(indices_tuple, ref_emb, ref_labels)
        loss, self.last_stats = self._loss(embeddings, labels)
        if self.training and self.scheduled:
            self.schedule_warnings.training_step(embeddings.shape[0], self.expansion.ratio)
        return loss

    def _loss(self, embeddings, labels):
        """(loss, SEEStats) of the batch: the subclass's loss."""
        raise NotImplementedError

    def call_keywords(self) -> dict:
        """The keywords of the functional loss for this module's current state."""
        return dict(expansion=self.expansion, generator=self.generator, implementation=self.implementation,
                    check_values=self.check_values, chunk_bytes=self.chunk_bytes)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, {self.settings}, " \
               f"expansion={self.expansion}"
